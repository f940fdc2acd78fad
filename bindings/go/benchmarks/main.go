// Flipbook for Go against baselines measured in the same run.
//
//	go run . [-smoke]        (in bindings/go/benchmarks, after ../scripts/lib.sh)
//
// Needs the flipbook server binary (FLIPBOOK_BIN, else the shared cargo target dir's release
// build, else its debug one) and a PostgreSQL database (FLIPBOOK_TEST_POSTGRES_URL). Prints one
// line per figure: Flipbook's rate, the baseline's, the ratio and the target.
//
//  1. Loading a 100,000-event state with a Go reducer through a server on SQLite, against the
//     same ReadState and fold through a plain grpc-go client generated from flipbook.proto
//     (flipbookv1/, what a Go user would write without the SDK). Target: at least 0.9.
//  2. Against a hand-written pgx event store on the same PostgreSQL (pgstore.go: the schema of
//     hallgren/eventsourcing's SQL store, which the Go module proxy here does not serve):
//     commands that load a wallet and append 1 event, and replays of a 1,000-event wallet.
//     Target: at least 1.0 each.
//  3. Streaming a 1,000,000-event state through ReadState: the process's peak RSS. Target:
//     under 100 MiB.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
	"github.com/flipbook-es/flipbook/bindings/go/benchmarks/flipbookv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var smoke = flag.Bool("smoke", false, "a quick run: small sizes, one repeat (checks that it runs)")

// payload is every event's: a realistic small JSON object.
var payload = map[string]any{"account": "acc-0001", "amount": 3, "currency": "EUR", "reference": "invoice 2026-11-27/0042"}

func report(what, unit string, ours float64, baselineName string, baseline, target float64) bool {
	ratio := ours / baseline
	met := ratio >= target
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	fmt.Printf("%-48s flipbook %12.0f %-9s %s %12.0f %-9s ratio %6.2f (target >= %g) %s\n",
		what, ours, unit, baselineName, baseline, unit, ratio, target, verdict)
	return met
}

func median(values []float64) float64 {
	sort.Float64s(values)
	return values[len(values)/2]
}

// rates answers the median rates of repeats runs each of ours and baseline, alternating, so a
// noisy neighbour slows both alike.
func rates(count int, ours, baseline func() error, repeats int) (float64, float64, error) {
	var measured [2][]float64
	for range repeats {
		for i, run := range []func() error{ours, baseline} {
			began := time.Now()
			if err := run(); err != nil {
				return 0, 0, err
			}
			measured[i] = append(measured[i], float64(count)/time.Since(began).Seconds())
		}
	}
	return median(measured[0]), median(measured[1]), nil
}

// apply is the fold every store's load uses: each event's JSON payload decoded.
func apply(balance int64, name string, data []byte) (int64, error) {
	var d struct{ Amount int64 }
	if err := json.Unmarshal(data, &d); err != nil {
		return balance, err
	}
	if name == "Deposited" {
		return balance + d.Amount, nil
	}
	return balance - d.Amount, nil
}

var balances = flipbook.Reducer[int64]{
	Revision: "balance-1",
	Apply:    func(b int64, e flipbook.Event) (int64, error) { return apply(b, e.Name, e.Payload) },
}

// plain is neither the local cache nor snapshots: every load reads and folds every event.
var plain = []flipbook.Option{flipbook.WithCache(0, 0), flipbook.WithSnapshotEvery(0)}

func writeState(ctx context.Context, c *flipbook.Client, stateID string, count int) error {
	event := flipbook.EventData{Name: "Deposited", Data: payload} // no event id: each append gets fresh ones
	for start := 0; start < count; start += 1000 {
		events := make([]flipbook.EventData, min(1000, count-start))
		for i := range events {
			events[i] = event
		}
		if _, err := c.Append(ctx, flipbook.Append{StateID: stateID, Events: events}); err != nil {
			return err
		}
	}
	return nil
}

func loadAgainstGrpc(ctx context.Context, binary, dir string) (bool, error) {
	events, repeats := 100_000, 5
	if *smoke {
		events, repeats = 5_000, 1
	}
	server, err := startServer(binary, "--sqlite-path", filepath.Join(dir, "bench.db"))
	if err != nil {
		return false, err
	}
	defer server.stop()
	client, err := flipbook.Connect(ctx, server.URL, plain...)
	if err != nil {
		return false, err
	}
	defer client.Close()
	conn, err := grpc.NewClient(strings.TrimPrefix(server.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	raw := flipbookv1.NewEventStoreClient(conn)
	stateID := fmt.Sprintf("big-%d", time.Now().UnixNano())
	if err := writeState(ctx, client, stateID, events); err != nil {
		return false, err
	}
	ours := func() error {
		loaded, err := flipbook.Load(ctx, client, stateID, balances)
		if err == nil && loaded.State != int64(3*events) {
			err = fmt.Errorf("folded %d", loaded.State)
		}
		return err
	}
	// What a Go user writes without the SDK: ReadState's stream, each event's payload decoded.
	baseline := func() error {
		balance, _, err := grpcFold(ctx, raw, stateID)
		if err != nil {
			return err
		}
		if balance != int64(3*events) {
			return fmt.Errorf("grpc-go folded %d", balance)
		}
		return nil
	}
	flipbookRate, grpcRate, err := rates(events, ours, baseline, repeats)
	if err != nil {
		return false, err
	}
	return report(fmt.Sprintf("load %d events, Go reducer", events), "events/s", flipbookRate, "grpc-go", grpcRate, 0.9), nil
}

func againstPgx(ctx context.Context, binary string) (bool, error) {
	url := os.Getenv("FLIPBOOK_TEST_POSTGRES_URL")
	if url == "" {
		return false, fmt.Errorf("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database")
	}
	wallets, commandsEach, replayEvents, replays, repeats := 50, 20, 1_000, 20, 5
	if *smoke {
		wallets, commandsEach, replayEvents, replays, repeats = 5, 10, 200, 3, 1
	}
	server, err := startServer(binary, "--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", url)
	if err != nil {
		return false, err
	}
	defer server.stop()
	client, err := flipbook.Connect(ctx, server.URL)
	if err != nil {
		return false, err
	}
	defer client.Close()
	uncached, err := flipbook.Connect(ctx, server.URL, plain...)
	if err != nil {
		return false, err
	}
	defer uncached.Close()
	store, err := openPgStore(ctx, url)
	if err != nil {
		return false, err
	}
	defer store.close()
	data, _ := json.Marshal(payload)
	deposit := func(int64) ([]flipbook.EventData, error) {
		return []flipbook.EventData{{Name: "Deposited", Data: payload}}, nil
	}
	run := time.Now().UnixNano()
	flipbookCommands := func() error {
		for w := range wallets {
			stateID := fmt.Sprintf("wallet-%d-%d", run, w)
			for range commandsEach {
				if _, err := flipbook.Execute(ctx, client, stateID, balances, deposit); err != nil {
					return err
				}
			}
		}
		run++
		return nil
	}
	pgxCommands := func() error {
		for w := range wallets {
			streamID := fmt.Sprintf("wallet-%d-%d", run, w)
			for range commandsEach {
				if err := store.command(ctx, streamID, "Deposited", data); err != nil {
					return err
				}
			}
		}
		run++
		return nil
	}
	ours, theirs, err := rates(wallets*commandsEach, flipbookCommands, pgxCommands, repeats)
	if err != nil {
		return false, err
	}
	met := report("commands, 1 event each (PostgreSQL)", "cmds/s", ours, "pgx", theirs, 1.0)
	// Where the time goes: the same commands through a plain grpc-go client of the same server
	// (ReadState, fold, Append expecting the version). Beside the figure above: what the
	// server's round trips cost, with no SDK in the way.
	conn, err := grpc.NewClient(strings.TrimPrefix(server.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	raw := flipbookv1.NewEventStoreClient(conn)
	grpcCommands := func() error {
		for w := range wallets {
			stateID := fmt.Sprintf("wallet-%d-%d", run, w)
			for range commandsEach {
				if err := grpcCommand(ctx, raw, stateID, data); err != nil {
					return err
				}
			}
		}
		run++
		return nil
	}
	ours, theirs, err = rates(wallets*commandsEach, flipbookCommands, grpcCommands, repeats)
	if err != nil {
		return false, err
	}
	report("commands, 1 event each (PostgreSQL), plain gRPC", "cmds/s", ours, "grpc-go", theirs, 0.9)

	stateID := fmt.Sprintf("replay-%d", run)
	if err := writeState(ctx, client, stateID, replayEvents); err != nil {
		return false, err
	}
	if err := store.write(ctx, stateID, replayEvents, "Deposited", data); err != nil {
		return false, err
	}
	flipbookReplays := func() error {
		for range replays {
			if _, err := flipbook.Load(ctx, uncached, stateID, balances); err != nil {
				return err
			}
		}
		return nil
	}
	pgxReplays := func() error {
		for range replays {
			if _, _, err := store.load(ctx, stateID); err != nil {
				return err
			}
		}
		return nil
	}
	oursReplays, theirReplays, err := rates(replays, flipbookReplays, pgxReplays, repeats)
	if err != nil {
		return false, err
	}
	replayed := fmt.Sprintf("replay a %d-event aggregate", replayEvents)
	met = report(replayed, "loads/s", oursReplays, "pgx", theirReplays, 1.0) && met
	// What a load of it costs with the SDK's defaults but no local cache: from the snapshot the
	// first load writes (not a replay: beside the figure above, not instead of it).
	snapshotted, err := flipbook.Connect(ctx, server.URL, flipbook.WithCache(0, 0))
	if err != nil {
		return false, err
	}
	if _, err := flipbook.Load(ctx, snapshotted, stateID, balances); err != nil {
		return false, err
	}
	_ = snapshotted.Close() // waits for the snapshot it writes
	fromSnapshots, err := flipbook.Connect(ctx, server.URL, flipbook.WithCache(0, 0))
	if err != nil {
		return false, err
	}
	defer fromSnapshots.Close()
	snapshotLoads := func() error {
		for range replays {
			if _, err := flipbook.Load(ctx, fromSnapshots, stateID, balances); err != nil {
				return err
			}
		}
		return nil
	}
	oursLoads, theirLoads, err := rates(replays, snapshotLoads, pgxReplays, repeats)
	if err != nil {
		return false, err
	}
	report(replayed+", from its snapshot", "loads/s", oursLoads, "pgx", theirLoads, 1.0)
	return met, nil
}

// grpcFold reads a state through the generated client alone and folds it: its balance and the
// version of its last event.
func grpcFold(ctx context.Context, raw flipbookv1.EventStoreClient, stateID string) (int64, uint64, error) {
	stream, err := raw.ReadState(ctx, &flipbookv1.ReadStateRequest{StateId: stateID})
	if err != nil {
		return 0, 0, err
	}
	var balance int64
	var version uint64
	for {
		page, err := stream.Recv()
		if err == io.EOF {
			return balance, version, nil
		}
		if err != nil {
			return 0, 0, err
		}
		for _, e := range page.Events {
			if balance, err = apply(balance, e.Name, e.Payload); err != nil {
				return 0, 0, err
			}
			version = e.GetVersion()
		}
	}
}

// grpcCommand is a command as a Go user writes it on the generated client alone: read and fold
// the state, append one event expecting the version read.
func grpcCommand(ctx context.Context, raw flipbookv1.EventStoreClient, stateID string, data []byte) error {
	_, version, err := grpcFold(ctx, raw, stateID)
	if err != nil {
		return err
	}
	_, err = raw.Append(ctx, &flipbookv1.AppendRequest{
		StateId:  stateID,
		Events:   []*flipbookv1.ProposedEvent{{EventId: newUUID(), Name: "Deposited", Payload: data}},
		Expected: &flipbookv1.AppendRequest_ExactVersion{ExactVersion: version},
	})
	return err
}

// newUUID is a random (version 4) UUID: an event id makes the append safe to re-send.
func newUUID() string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:])
}

func streamingMemory(ctx context.Context, binary, dir string) (bool, error) {
	events := 1_000_000
	if *smoke {
		events = 20_000
	}
	server, err := startServer(binary, "--sqlite-path", filepath.Join(dir, "stream.db"))
	if err != nil {
		return false, err
	}
	defer server.stop()
	client, err := flipbook.Connect(ctx, server.URL)
	if err != nil {
		return false, err
	}
	defer client.Close()
	stateID := fmt.Sprintf("huge-%d", time.Now().UnixNano())
	if err := writeState(ctx, client, stateID, events); err != nil {
		return false, err
	}
	// In a process of its own (this program with -stream), so its peak is the stream's alone.
	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	out, err := exec.Command(self, "-stream", server.URL, "-state", stateID, "-events", strconv.Itoa(events)).Output()
	if err != nil {
		return false, fmt.Errorf("the streaming process: %w", err)
	}
	peak, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return false, err
	}
	met := peak < 100
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	fmt.Printf("%-48s flipbook %12.1f MiB (target < 100) %s\n", fmt.Sprintf("stream %d events, peak RSS", events), peak, verdict)
	return met, nil
}

var (
	streamURL    = flag.String("stream", "", "(internal) stream a state from this server and print the peak RSS in MiB")
	streamState  = flag.String("state", "", "(internal) the state -stream reads")
	streamEvents = flag.Int("events", 0, "(internal) the events -stream expects")
)

func stream(ctx context.Context) error {
	client, err := flipbook.Connect(ctx, *streamURL)
	if err != nil {
		return err
	}
	defer client.Close()
	count := 0
	for e, err := range client.ReadState(ctx, flipbook.StateQuery{StateID: *streamState}) {
		if err != nil {
			return err
		}
		if len(e.Payload) > 0 {
			count++
		}
	}
	if count != *streamEvents {
		return fmt.Errorf("streamed %d", count)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 64)
			fmt.Printf("%.1f\n", n/1024)
			return nil
		}
	}
	return fmt.Errorf("no VmHWM in /proc/self/status")
}

func main() {
	flag.Parse()
	ctx := context.Background()
	if *streamURL != "" {
		if err := stream(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	binary := serverBinary()
	dir, err := os.MkdirTemp("", "flipbook-go-bench-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	mode := "full"
	if *smoke {
		mode = "smoke"
	}
	fmt.Printf("Go benchmark (%s mode), server %s\n", mode, binary)
	met := true
	for _, bench := range []func() (bool, error){
		func() (bool, error) { return loadAgainstGrpc(ctx, binary, dir) },
		func() (bool, error) { return againstPgx(ctx, binary) },
		func() (bool, error) { return streamingMemory(ctx, binary, dir) },
	} {
		ok, err := bench()
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchmark failed:", err)
			os.Exit(1)
		}
		met = ok && met
	}
	if !met && !*smoke {
		fmt.Println("some targets were missed")
	}
}
