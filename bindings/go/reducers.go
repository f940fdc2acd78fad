//go:build cgo

package flipbook

/*
#include "callbacks.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
	"unsafe"
)

// Reducer folds a state's events into its state, S. States are encoded as JSON for the cache
// and snapshots unless Codec says otherwise. Change Revision whenever Apply or S changes shape:
// snapshots of other revisions are then ignored.
type Reducer[S any] struct {
	Revision string
	// Initial is the state of a state id with no events; nil: S's zero value.
	Initial func() S
	// Apply answers the state after one more event. An error it returns ends the load or
	// command with that same error; nothing is appended.
	Apply func(state S, event Event) (S, error)
	// Codec encodes S for the cache and snapshots; nil: JSON.
	Codec Codec[S]
}

// Codec encodes a state for the cache and snapshots.
type Codec[S any] interface {
	Encode(state S) ([]byte, error)
	Decode(data []byte) (S, error)
}

type jsonCodec[S any] struct{}

// Encode is json.Marshal.
func (jsonCodec[S]) Encode(state S) ([]byte, error) { return json.Marshal(state) }

// Decode is json.Unmarshal into a new S.
func (jsonCodec[S]) Decode(data []byte) (S, error) {
	var state S
	err := json.Unmarshal(data, &state)
	return state, err
}

func (r *Reducer[S]) codec() Codec[S] {
	if r.Codec == nil {
		return jsonCodec[S]{}
	}
	return r.Codec
}

func (r *Reducer[S]) initial() S {
	if r.Initial == nil {
		var zero S
		return zero
	}
	return r.Initial()
}

// Loaded is a folded state and its version.
type Loaded[S any] struct {
	State S
	// Version is the last version folded (0: the state has no events).
	Version uint64
}

// Executed is what a command did to one state.
type Executed[S any] struct {
	State   S
	Version uint64
	// Appended is nil when the decision was to append nothing.
	Appended *AppendResult
	// Tries is the number of decide-and-append rounds: more than one means conflicts were retried.
	Tries uint32
}

// Target is one state of ExecuteStates.
type Target[S any] struct {
	StateID string
	Reducer Reducer[S]
}

// LoadOption changes what Load reads.
type LoadOption func(*loadSettings)

type loadSettings struct{ asOf time.Time }

// AsOf folds only the events whose domain time is at or before t (no cache, no snapshot).
func AsOf(t time.Time) LoadOption { return func(s *loadSettings) { s.asOf = t } }

// Load folds a state: from the client's cache, else its newest snapshot, else the beginning,
// and then the events after it.
func Load[S any](ctx context.Context, c *Client, stateID string, r Reducer[S], options ...LoadOption) (Loaded[S], error) {
	var settings loadSettings
	for _, option := range options {
		option(&settings)
	}
	var in inputs
	defer in.release()
	executed, err := converse(ctx, c, []Target[S]{{stateID, r}}, nil, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		asOf := !settings.asOf.IsZero()
		var nanos C.int64_t
		if asOf {
			nanos = nanosOf(settings.asOf)
		}
		return C.fb_load_session(client, in.text(stateID), in.text(r.Revision), cBool(asOf), nanos,
			C.FbSessionDone(C.fbgo_session_done), userData)
	})
	if err != nil {
		return Loaded[S]{}, err
	}
	return Loaded[S]{State: executed[0].State, Version: executed[0].Version}, nil
}

// Execute runs a command on one state: it folds the state, asks decide for the events to
// append, and appends them expecting the version it folded. On a conflict it folds the new
// events and decides again (WithRetries), re-sending a lost append with the same event ids. An
// error decide returns comes back as that same error; nothing is appended.
func Execute[S any](ctx context.Context, c *Client, stateID string, r Reducer[S], decide func(state S) ([]EventData, error)) (Executed[S], error) {
	var in inputs
	defer in.release()
	both := func(states []S) ([][]EventData, error) {
		events, err := decide(states[0])
		return [][]EventData{events}, err
	}
	executed, err := converse(ctx, c, []Target[S]{{stateID, r}}, both, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_execute_session(client, in.text(stateID), in.text(r.Revision), C.FbSessionDone(C.fbgo_session_done), userData)
	})
	if err != nil {
		return Executed[S]{}, err
	}
	return executed[0], nil
}

// ExecuteStates runs a command on several states: decide gets their states in the order of
// targets and answers the events for each (nil: none), appended in one atomic append.
func ExecuteStates[S any](ctx context.Context, c *Client, targets []Target[S], decide func(states []S) ([][]EventData, error)) ([]Executed[S], error) {
	var in inputs
	defer in.release()
	natives := make([]C.FbSessionTarget, len(targets))
	for i, t := range targets {
		natives[i] = C.FbSessionTarget{state_id: in.text(t.StateID), reducer_revision: in.text(t.Reducer.Revision)}
	}
	first := array(&in, natives)
	return converse(ctx, c, targets, decide, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_execute_states_session(client, first, C.size_t(len(natives)), C.FbSessionDone(C.fbgo_session_done), userData)
	})
}

// session is one conversation with the core (bindings/README.md): the core says where each
// state starts and what to fold, and appends; the reducers and decide run here, in the caller's
// goroutine.
type session struct {
	ctx    context.Context
	native *C.FbSession
}

// check turns an error a session call answered at once into a Go error.
func check(failure *C.FbError) error {
	if failure != nil {
		return takeError(failure)
	}
	return nil
}

func converse[S any](ctx context.Context, c *Client, targets []Target[S], decide func([]S) ([][]EventData, error), open func(*C.FbClient, unsafe.Pointer) *C.FbCall) ([]Executed[S], error) {
	native, err := call(ctx, c, func(value unsafe.Pointer, _ uint64) *C.FbSession { return (*C.FbSession)(value) }, open)
	if err != nil {
		return nil, err
	}
	s := session{ctx: ctx, native: native}
	defer C.fb_session_free(native) // an unfinished command appends nothing more
	states := make([]S, len(targets))
	for i := range targets {
		if states[i], err = start(s, i, &targets[i].Reducer); err != nil {
			return nil, err
		}
	}
	for {
		for i := range targets {
			if states[i], err = fold(s, i, &targets[i].Reducer, states[i]); err != nil {
				return nil, err
			}
		}
		var decided C.bool
		if err := check(C.fb_session_is_decided(native, &decided)); err != nil {
			return nil, err
		}
		if decide == nil || bool(decided) {
			break
		}
		decisions, err := protect(func() ([][]EventData, error) { return decide(append([]S(nil), states...)) })
		if err != nil {
			return nil, err
		}
		if len(decisions) != len(targets) {
			return nil, invalid("decisions", fmt.Sprintf("must hold one list of events per state (%d)", len(targets)))
		}
		if err := s.submit(decisions); err != nil {
			return nil, err
		}
	}
	finished, err := s.finish(encodeStates(s, targets, states))
	if err != nil {
		return nil, err
	}
	executed := make([]Executed[S], len(targets))
	for i, f := range finished {
		executed[i] = Executed[S]{State: states[i], Version: f.version, Appended: f.appended, Tries: f.tries}
	}
	return executed, nil
}

// start answers where a state's fold begins: the session's base when it decodes, else the
// reducer's initial state.
func start[S any](s session, i int, r *Reducer[S]) (S, error) {
	var base C.FbBase
	if err := check(C.fb_session_base(s.native, C.size_t(i), &base)); err != nil {
		var zero S
		return zero, err
	}
	if base.has_base {
		state, err := r.codec().Decode(view(base.state))
		if err == nil {
			return state, nil
		}
		// A state this reducer cannot read (its shape changed under the same revision): fold
		// from the beginning instead.
		if err := check(C.fb_session_discard_base(s.native, C.size_t(i))); err != nil {
			return state, err
		}
	}
	return protect(func() (S, error) { return r.initial(), nil })
}

func fold[S any](s session, i int, r *Reducer[S], state S) (S, error) {
	for {
		page, err := nextPage(s.ctx, func(userData unsafe.Pointer) *C.FbCall {
			return C.fb_session_next_page(s.native, C.size_t(i), C.FbPageDone(C.fbgo_page_done), userData)
		})
		if err != nil || page == nil {
			return state, err
		}
		state, err = protect(func() (S, error) {
			for _, event := range page {
				var err error
				if state, err = r.Apply(state, event); err != nil {
					return state, err
				}
			}
			return state, nil
		})
		if err != nil {
			return state, err
		}
	}
}

// protect runs user code: its error comes back as it is, a panic as an error (with the stack)
// that never unwinds through the core.
func protect[T any](user func() (T, error)) (value T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Code: CodeRejected, Message: fmt.Sprintf("panic: %v\n%s", p, debug.Stack())}
		}
	}()
	return user()
}

func (s session) submit(decisions [][]EventData) error {
	var in inputs
	defer in.release()
	natives := make([]C.FbDecision, len(decisions))
	for i, events := range decisions {
		first, count, err := in.events(events, fmt.Sprintf("decisions[%d]", i))
		if err != nil {
			return err
		}
		natives[i] = C.FbDecision{events: first, event_count: count}
	}
	first := array(&in, natives)
	_, err := await(s.ctx, succeeded, started(func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_session_submit(s.native, first, C.size_t(len(natives)), C.FbDone(C.fbgo_done), userData)
	}))
	return err
}

// encodeStates encodes each state the core wants (for the cache or a snapshot). A state that
// does not encode is neither, with a warning: the command's events are stored by now, and
// failing the call would invite a retry that stores them twice.
func encodeStates[S any](s session, targets []Target[S], states []S) [][]byte {
	encoded := make([][]byte, len(states))
	for i := range states {
		var wants C.bool
		if C.fb_session_wants_state(s.native, C.size_t(i), &wants) != nil || !bool(wants) {
			continue
		}
		data, err := protect(func() ([]byte, error) { return targets[i].Reducer.codec().Encode(states[i]) })
		if err != nil {
			slog.Warn("flipbook: a state was not cached", "revision", targets[i].Reducer.Revision, "error", err)
			continue
		}
		encoded[i] = data
	}
	return encoded
}

type finished struct {
	version  uint64
	appended *AppendResult
	tries    uint32
}

func (s session) finish(encoded [][]byte) ([]finished, error) {
	var in inputs
	defer in.release()
	natives := make([]C.FbEncodedState, len(encoded))
	for i, data := range encoded {
		natives[i] = C.FbEncodedState{has_state: cBool(data != nil), state: in.bytes(data)}
	}
	first := array(&in, natives)
	return await(s.ctx, func(value unsafe.Pointer, count uint64) []finished {
		natives := unsafe.Slice((*C.FbFinished)(value), int(count))
		out := make([]finished, len(natives))
		for i := range natives {
			f := &natives[i]
			out[i] = finished{version: uint64(f.version), tries: uint32(f.tries)}
			if f.has_appended {
				appended := appendResultOf(&f.appended)
				out[i].appended = &appended
			}
		}
		return out
	}, started(func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_session_finish(s.native, first, C.size_t(len(natives)), C.FbFinishDone(C.fbgo_finish_done), userData)
	}))
}
