// The conformance suite's Go driver (conformance/README.md, "The protocol"): reads one request a
// line on stdin and answers one line on stdout, using only the flipbook package's public API,
// as an application would. It is built on the released module fetched with `go get` from a
// file GOPROXY, with no Rust toolchain (install.sh).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

// args are a request's arguments as the cases write them; numbers stay exact (json.Number).
type args map[string]any

type answer map[string]any

// driverError is a request the driver cannot run: a bug in the case or the runner.
type driverError struct{ message string }

func (e driverError) Error() string { return e.message }

// insufficientFunds is the decide function's own error: it reaches the caller unchanged; the
// suite calls it REJECTED.
type insufficientFunds struct{ balance, wanted int64 }

func (e insufficientFunds) Error() string { return fmt.Sprintf("%d < %d", e.balance, e.wanted) }

func (a args) has(key string) bool { v, ok := a[key]; return ok && v != nil }

func (a args) str(key string) string { s, _ := a[key].(string); return s }

// num is an unsigned integer argument, exact to 2^64 (0 when absent).
func (a args) num(key string) uint64 {
	n, _ := a[key].(json.Number)
	v, _ := strconv.ParseUint(n.String(), 10, 64)
	return v
}

func (a args) int(key string) int64 {
	n, _ := a[key].(json.Number)
	v, _ := strconv.ParseInt(n.String(), 10, 64)
	return v
}

func (a args) sub(key string) args { m, _ := a[key].(map[string]any); return m }

func (a args) list(key string) []args {
	items, _ := a[key].([]any)
	out := make([]args, len(items))
	for i, item := range items {
		out[i], _ = item.(map[string]any)
	}
	return out
}

func (a args) strings(key string) []string {
	items, _ := a[key].([]any)
	out := make([]string, len(items))
	for i, item := range items {
		out[i], _ = item.(string)
	}
	return out
}

func (a args) metadata(key string) map[string]string {
	m := a.sub(key)
	if m == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

// ---- requests and answers ---------------------------------------------------------------------

func expected(value any) flipbook.Expected {
	switch v := value.(type) {
	case string:
		if v == "no_state" {
			return flipbook.ExpectNoState
		}
	case json.Number:
		return flipbook.ExpectVersion(args{"v": v}.num("v"))
	}
	return flipbook.ExpectAny
}

func event(spec args) (flipbook.EventData, error) {
	e := flipbook.EventData{Name: spec.str("name"), Metadata: spec.metadata("metadata")}
	if spec.has("id") {
		id, err := flipbook.ParseID(spec.str("id"))
		if err != nil {
			return e, err
		}
		e.ID = id
	}
	if spec.has("version") {
		e.Version = spec.num("version")
	}
	if spec.has("timestamp_nanos") {
		e.Timestamp = time.Unix(0, spec.int("timestamp_nanos")).UTC()
	}
	if spec.has("payload_size") {
		e.Payload = []byte(strings.Repeat("x", int(spec.int("payload_size"))))
		e.ContentType = "application/octet-stream"
		return e, nil
	}
	if spec.has("payload") {
		e.Data = spec["payload"]
	}
	return e, nil
}

func appendOf(spec args) (flipbook.Append, error) {
	a := flipbook.Append{
		StateID:        spec.str("state"),
		Expected:       expected(spec["expected"]),
		VersionNeutral: spec["neutral"] == true,
		StateMetadata:  spec.metadata("state_metadata"),
	}
	for _, e := range spec.list("events") {
		event, err := event(e)
		if err != nil {
			return a, err
		}
		a.Events = append(a.Events, event)
	}
	return a, nil
}

func outcome(r flipbook.AppendResult, neutral bool) answer {
	var last any
	if !neutral {
		last = r.LastVersion
	}
	return answer{"last_version": last, "positions": r.GlobalPositions}
}

func eventJSON(e flipbook.Event) answer {
	var payload any = answer{"size": len(e.Payload)}
	if e.ContentType == "application/json" {
		var decoded any
		decoder := json.NewDecoder(strings.NewReader(string(e.Payload)))
		decoder.UseNumber()
		if decoder.Decode(&decoded) == nil {
			payload = decoded
		}
	}
	var version, timestamp any
	if e.Version > 0 {
		version = e.Version
	}
	if !e.Timestamp.IsZero() {
		timestamp = e.Timestamp.UnixNano()
	}
	metadata := e.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	return answer{
		"state": e.StateID, "version": version, "position": e.GlobalPosition, "id": e.ID.String(),
		"name": e.Name, "payload": payload, "metadata": metadata, "timestamp_nanos": timestamp,
	}
}

// ---- the named reducers and decide functions (conformance/README.md) --------------------------

type wallet struct {
	Balance int64 `json:"balance"`
}

type counter struct {
	Count int64 `json:"count"`
}

func amount(e flipbook.Event) int64 {
	var d struct{ Amount int64 }
	_ = e.Decode(&d)
	return d.Amount
}

var wallets = flipbook.Reducer[wallet]{
	Revision: "conformance-wallet-1",
	Apply: func(w wallet, e flipbook.Event) (wallet, error) {
		switch e.Name {
		case "Deposited":
			w.Balance += amount(e)
		case "Withdrawn":
			w.Balance -= amount(e)
		}
		return w, nil
	},
}

var counters = flipbook.Reducer[counter]{
	Revision: "conformance-counter-1",
	Apply:    func(c counter, _ flipbook.Event) (counter, error) { c.Count++; return c, nil },
}

func load[S any](ctx context.Context, c *flipbook.Client, a args, r flipbook.Reducer[S]) (answer, error) {
	var options []flipbook.LoadOption
	if a.has("as_of_nanos") {
		options = append(options, flipbook.AsOf(time.Unix(0, a.int("as_of_nanos"))))
	}
	loaded, err := flipbook.Load(ctx, c, a.str("state"), r, options...)
	return answer{"state": loaded.State, "version": loaded.Version}, err
}

func execute(ctx context.Context, c *flipbook.Client, a args) (answer, error) {
	id, decide := a.str("state"), a.sub("decide")
	competing := decide.has("competitor")
	decision := func(balance int64) ([]flipbook.EventData, error) {
		// The competing writer appends while the first decision is made, so its append conflicts
		// and the command must decide again on the new state.
		if competing {
			competing = false
			deposit := flipbook.EventData{Name: "Deposited", Data: map[string]any{"amount": decide["competitor"]}}
			if _, err := c.Append(ctx, flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit}}); err != nil {
				return nil, err
			}
		}
		switch {
		case decide.has("deposit"):
			return []flipbook.EventData{{Name: "Deposited", Data: map[string]any{"amount": decide["deposit"]}}}, nil
		case decide.has("withdraw"):
			if balance < decide.int("withdraw") {
				return nil, insufficientFunds{balance, decide.int("withdraw")}
			}
			return []flipbook.EventData{{Name: "Withdrawn", Data: map[string]any{"amount": decide["withdraw"]}}}, nil
		}
		return nil, nil
	}
	switch a.str("reducer") {
	case "wallet":
		done, err := flipbook.Execute(ctx, c, id, wallets, func(w wallet) ([]flipbook.EventData, error) { return decision(w.Balance) })
		return answer{"state": done.State, "version": done.Version, "tries": done.Tries, "appended": done.Appended != nil}, err
	case "counter":
		done, err := flipbook.Execute(ctx, c, id, counters, func(counter) ([]flipbook.EventData, error) { return decision(0) })
		return answer{"state": done.State, "version": done.Version, "tries": done.Tries, "appended": done.Appended != nil}, err
	}
	return nil, driverError{"no reducer " + a.str("reducer")}
}

func executeStates(ctx context.Context, c *flipbook.Client, a args) (answer, error) {
	transfer := a.sub("decide").int("transfer")
	states := a.strings("states")
	targets := []flipbook.Target[wallet]{{StateID: states[0], Reducer: wallets}, {StateID: states[1], Reducer: wallets}}
	done, err := flipbook.ExecuteStates(ctx, c, targets, func(w []wallet) ([][]flipbook.EventData, error) {
		if w[0].Balance < transfer {
			return nil, insufficientFunds{w[0].Balance, transfer}
		}
		return [][]flipbook.EventData{
			{{Name: "Withdrawn", Data: map[string]any{"amount": transfer}}},
			{{Name: "Deposited", Data: map[string]any{"amount": transfer}}},
		}, nil
	})
	results := make([]answer, len(done))
	for i, e := range done {
		results[i] = answer{"state": e.State, "version": e.Version, "appended": e.Appended != nil}
	}
	return answer{"results": results}, err
}

// patience is how long a subscription step waits for the events it asks for.
const patience = 10 * time.Second

func subscriptionQuery(a args) flipbook.SubscriptionQuery {
	q := flipbook.SubscriptionQuery{StateIDPrefix: a.str("prefix"), Names: a.strings("names")}
	switch after := a["after"].(type) {
	case string:
		q.FromNow = after == "now"
	case json.Number:
		q.After = a.num("after")
	}
	return q
}

func collect(events func(func(flipbook.Event, error) bool)) ([]answer, error) {
	out := []answer{}
	for e, err := range events {
		if err != nil {
			return nil, err
		}
		out = append(out, eventJSON(e))
	}
	return out, nil
}

// consumer consumes an open subscription all the time in the background, the way an
// application's projection does (subscribe_open, subscribe_next, subscribe_close), also while
// the runner restarts a server.
type consumer struct {
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every message
	events   []answer
	messages int
	taken    int
	err      error
}

func open(c *flipbook.Client, a args) *consumer {
	ctx, cancel := context.WithCancel(context.Background())
	k := &consumer{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		defer close(k.done)
		for m, err := range c.Subscribe(ctx, subscriptionQuery(a)).WithCheckpoints() {
			k.mu.Lock()
			switch {
			case err != nil && ctx.Err() == nil:
				k.err = err
			case err == nil:
				k.messages++
				if m.Event != nil {
					k.events = append(k.events, eventJSON(*m.Event))
				}
			}
			close(k.changed)
			k.changed = make(chan struct{})
			k.mu.Unlock()
		}
	}()
	return k
}

// until waits until done holds (under the lock) or wait passed.
func (k *consumer) until(done func() bool, wait time.Duration) {
	deadline := time.After(wait)
	for {
		k.mu.Lock()
		ok, changed := done(), k.changed
		k.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			return
		}
	}
}

func (k *consumer) next(count int, wait time.Duration) ([]answer, error) {
	k.mu.Lock()
	wanted := k.taken + count
	k.mu.Unlock()
	k.until(func() bool { return len(k.events) >= wanted || k.err != nil }, wait)
	k.mu.Lock()
	defer k.mu.Unlock()
	end := min(len(k.events), wanted)
	if end == k.taken && k.err != nil {
		err := k.err
		k.err = nil
		return nil, err
	}
	events := k.events[k.taken:end]
	k.taken = end
	return events, nil
}

func (k *consumer) close() {
	k.cancel()
	<-k.done
}

// session is what the driver holds between steps: its client, and the subscription a case opened.
type session struct {
	client   *flipbook.Client
	consumer *consumer
}

func (s *session) closeSubscription() {
	if s.consumer != nil {
		s.consumer.close()
		s.consumer = nil
	}
}

func (s *session) answer(ctx context.Context, op string, a args) (answer, error) {
	c := s.client
	switch op {
	case "append":
		part, err := appendOf(a)
		if err != nil {
			return nil, err
		}
		r, err := c.Append(ctx, part)
		return outcome(r, part.VersionNeutral), err
	case "append_states":
		var parts []flipbook.Append
		for _, p := range a.list("parts") {
			part, err := appendOf(p)
			if err != nil {
				return nil, err
			}
			parts = append(parts, part)
		}
		results, err := c.AppendStates(ctx, parts...)
		out := make([]answer, len(results))
		for i, r := range results {
			out[i] = outcome(r, parts[i].VersionNeutral)
		}
		return answer{"parts": out}, err
	case "read":
		q := flipbook.StateQuery{StateID: a.str("state"), Backward: a["backward"] == true, Names: a.strings("names")}
		q.MinVersion, q.MaxVersion, q.Limit = a.num("min_version"), a.num("max_version"), a.num("limit")
		if a.has("as_of_nanos") {
			q.AsOf = time.Unix(0, a.int("as_of_nanos"))
		}
		events, err := collect(c.ReadState(ctx, q))
		return answer{"events": events}, err
	case "read_all":
		q := flipbook.AllQuery{StateIDPrefix: a.str("prefix"), Names: a.strings("names"), Backward: a["backward"] == true}
		q.After, q.Until, q.Limit = a.num("after"), a.num("until"), a.num("limit")
		events, err := collect(c.ReadAll(ctx, q))
		return answer{"events": events}, err
	case "head":
		head, err := c.Head(ctx, a.str("state"))
		kind, last := "versioned", any(head.EventCount)
		if head.VersionNeutral {
			kind, last = "version-neutral", nil
		}
		return answer{"last_version": last, "event_count": head.EventCount, "kind": kind, "metadata": head.Metadata,
			"last_position": head.LastGlobalPosition}, err
	case "log_head":
		head, err := c.LogHead(ctx)
		return answer{"settled_position": head.SettledPosition, "event_count": head.EventCount}, err
	case "load":
		switch a.str("reducer") {
		case "wallet":
			return load(ctx, c, a, wallets)
		case "counter":
			return load(ctx, c, a, counters)
		}
		return nil, driverError{"no reducer " + a.str("reducer")}
	case "execute":
		return execute(ctx, c, a)
	case "execute_states":
		return executeStates(ctx, c, a)
	case "subscribe":
		waiting, cancel := context.WithTimeout(ctx, patience)
		defer cancel()
		received := []answer{}
		for e, err := range c.Subscribe(waiting, subscriptionQuery(a)).Events() {
			if err != nil {
				if waiting.Err() != nil {
					break // what arrived within the patience
				}
				return nil, err
			}
			received = append(received, eventJSON(e))
			if len(received) >= int(a.int("count")) {
				break
			}
		}
		return answer{"events": received}, nil
	case "subscribe_open":
		s.closeSubscription()
		s.consumer = open(c, a)
		if a["after"] == "now" {
			s.consumer.until(func() bool { return s.consumer.messages > 0 || s.consumer.err != nil }, patience)
		}
		return answer{}, nil
	case "subscribe_next":
		if s.consumer == nil {
			return nil, driverError{"no subscription is open"}
		}
		wait := patience
		if a.has("wait_ms") {
			wait = time.Duration(a.int("wait_ms")) * time.Millisecond
		}
		events, err := s.consumer.next(int(a.int("count")), wait)
		return answer{"events": events}, err
	case "subscribe_close":
		s.closeSubscription()
		return answer{}, nil
	case "put_snapshot":
		payload, err := json.Marshal(a["payload"])
		if err != nil {
			return nil, err
		}
		return answer{}, c.PutSnapshot(ctx, flipbook.Snapshot{StateID: a.str("state"), Version: a.num("version"),
			ReducerRevision: a.str("revision"), Payload: payload})
	case "get_snapshot":
		found, err := c.GetSnapshot(ctx, a.str("state"), a.str("revision"), a.num("max_version"))
		if err != nil || found == nil {
			return answer{"snapshot": nil}, err
		}
		decoder := json.NewDecoder(strings.NewReader(string(found.Payload)))
		decoder.UseNumber()
		var payload any
		if err := decoder.Decode(&payload); err != nil {
			return nil, err
		}
		return answer{"snapshot": answer{"version": found.Version, "revision": found.ReducerRevision, "payload": payload}}, nil
	}
	return nil, driverError{"no op " + op}
}

func (s *session) step(op string, a args) answer {
	ctx := context.Background()
	ok, err := func() (answer, error) {
		if op == "connect" {
			// A connect while connected replaces the client (the other server, or a new client
			// of the same embedded file).
			s.closeSubscription()
			if s.client != nil {
				_ = s.client.Close()
				s.client = nil
			}
			var err error
			if a.has("server") {
				s.client, err = flipbook.Connect(ctx, a.str("server"))
			} else {
				s.client, err = flipbook.OpenEmbedded(a.str("embedded"))
			}
			return answer{}, err
		}
		if s.client == nil {
			return nil, driverError{"not connected"}
		}
		return s.answer(ctx, op, a)
	}()
	var fe *flipbook.Error
	var funds insufficientFunds
	switch {
	case err == nil:
		return answer{"ok": ok}
	case errors.As(err, &fe):
		out := answer{"code": fe.Code.String(), "message": fe.Message}
		if fe.Field != "" {
			out["field"] = fe.Field
		}
		if fe.StateID != "" {
			out["state"] = fe.StateID
		}
		if fe.HasActualVersion {
			out["actual_version"] = fe.ActualVersion
		}
		return answer{"error": out}
	case errors.As(err, &funds):
		return answer{"error": answer{"code": "REJECTED", "message": err.Error()}}
	default:
		return answer{"error": answer{"code": "DRIVER", "message": err.Error()}}
	}
}

func main() {
	s := &session{}
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	for lines.Scan() {
		var request struct {
			Op   string `json:"op"`
			Args args   `json:"args"`
		}
		decoder := json.NewDecoder(strings.NewReader(lines.Text()))
		decoder.UseNumber()
		if err := decoder.Decode(&request); err != nil {
			fmt.Fprintln(os.Stderr, "a request that is not JSON:", err)
			os.Exit(2)
		}
		answer := s.step(request.Op, request.Args)
		encoded, err := json.Marshal(answer)
		if err != nil {
			encoded, _ = json.Marshal(map[string]any{"error": map[string]any{"code": "DRIVER", "message": err.Error()}})
		}
		out.Write(append(encoded, '\n'))
		out.Flush()
	}
	s.closeSubscription()
	if s.client != nil {
		_ = s.client.Close()
	}
}
