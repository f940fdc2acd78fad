//go:build cgo

package flipbook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

type wallet struct {
	Balance int `json:"balance"`
	Events  int `json:"events"`
}

var wallets = flipbook.Reducer[wallet]{
	Revision: "wallet-v1",
	Apply: func(w wallet, e flipbook.Event) (wallet, error) {
		var d struct{ Amount int }
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Balance += d.Amount
		w.Events++
		return w, nil
	},
}

func depositOf(amount int) func(wallet) ([]flipbook.EventData, error) {
	return func(wallet) ([]flipbook.EventData, error) { return []flipbook.EventData{deposit(amount)}, nil }
}

func TestExecuteAndLoad(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t, flipbook.WithSnapshotEvery(2))
		id := newID("wallet")
		for i := 1; i <= 5; i++ {
			executed, err := flipbook.Execute(ctx(t), c, id, wallets, depositOf(i))
			if err != nil {
				t.Fatal(err)
			}
			if executed.Version != uint64(i) || executed.Appended == nil || executed.Appended.LastVersion != uint64(i) || executed.Tries != 1 {
				t.Fatalf("execute %d: %+v", i, executed)
			}
		}
		// A new client: no cache, so the load starts from a snapshot the commands wrote.
		other := m.client(t)
		loaded, err := flipbook.Load(ctx(t), other, id, wallets)
		if err != nil || loaded.State.Balance != 15 || loaded.Version != 5 {
			t.Fatalf("load: %+v %v", loaded, err)
		}
		if s, err := other.GetSnapshot(ctx(t), id, wallets.Revision, 0); err != nil || s == nil {
			t.Fatalf("a snapshot was written: %+v %v", s, err)
		} else if loaded.State.Events == 5 && s.Version == 5 {
			t.Fatalf("the last snapshot is at 4 (every 2, the 5th command's is not due): %+v", s)
		}
		nothing, err := flipbook.Execute(ctx(t), c, id, wallets, func(wallet) ([]flipbook.EventData, error) { return nil, nil })
		if err != nil || nothing.Appended != nil || nothing.Version != 5 {
			t.Fatalf("a decision of no events: %+v %v", nothing, err)
		}
	})
}

func TestLoadAsOf(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("wallet")
		day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 3 {
			e := deposit(10)
			e.Timestamp = day.Add(time.Duration(i) * 24 * time.Hour)
			if _, err := c.Append(ctx(t), flipbook.Append{StateID: id, Events: []flipbook.EventData{e}}); err != nil {
				t.Fatal(err)
			}
		}
		loaded, err := flipbook.Load(ctx(t), c, id, wallets, flipbook.AsOf(day.Add(36*time.Hour)))
		if err != nil || loaded.State.Balance != 20 || loaded.Version != 2 {
			t.Fatalf("as of the second day: %+v %v", loaded, err)
		}
		events := collect(t, c.ReadState(ctx(t), flipbook.StateQuery{StateID: id}))
		if !events[1].Timestamp.Equal(day.Add(24 * time.Hour)) {
			t.Fatalf("timestamp %v", events[1].Timestamp)
		}
	})
}

func TestDecideErrorsComeBackAsTheyAre(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("wallet")
		insufficient := errors.New("insufficient funds")
		_, err := flipbook.Execute(ctx(t), c, id, wallets, func(wallet) ([]flipbook.EventData, error) { return nil, insufficient })
		if err != insufficient {
			t.Fatalf("got %v", err)
		}
		_, err = flipbook.Execute(ctx(t), c, id, wallets, func(wallet) ([]flipbook.EventData, error) { panic("boom") })
		var fe *flipbook.Error
		if !errors.As(err, &fe) || fe.Code != flipbook.CodeRejected || !strings.Contains(fe.Message, "boom") || !errors.Is(err, flipbook.ErrRejected) {
			t.Fatalf("a panic in decide: %v", err)
		}
		if _, err := c.Head(ctx(t), id); !errors.Is(err, flipbook.ErrNotFound) {
			t.Fatalf("nothing was appended: %v", err)
		}
		if _, err := c.Append(ctx(t), flipbook.Append{StateID: id, Events: []flipbook.EventData{{Name: "Deposited", Data: "not an object"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := flipbook.Load(ctx(t), c, id, wallets); err == nil || errors.As(err, &fe) {
			t.Fatalf("the reducer's own error: %v", err)
		}
		panicky := wallets
		panicky.Apply = func(wallet, flipbook.Event) (wallet, error) { panic(fmt.Sprintf("apply %s", id)) }
		if _, err := flipbook.Load(ctx(t), c, id, panicky); !errors.Is(err, flipbook.ErrRejected) {
			t.Fatalf("a panic in apply: %v", err)
		}
	})
}

func TestExecuteStatesAppendsAtomically(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		from, to := newID("from"), newID("to")
		if _, err := flipbook.Execute(ctx(t), c, from, wallets, depositOf(100)); err != nil {
			t.Fatal(err)
		}
		targets := []flipbook.Target[wallet]{{StateID: from, Reducer: wallets}, {StateID: to, Reducer: wallets}}
		transfer := func(states []wallet) ([][]flipbook.EventData, error) {
			if states[0].Balance < 60 {
				return nil, errors.New("insufficient funds")
			}
			return [][]flipbook.EventData{{deposit(-60)}, {deposit(60)}}, nil
		}
		executed, err := flipbook.ExecuteStates(ctx(t), c, targets, transfer)
		if err != nil || executed[0].State.Balance != 40 || executed[1].State.Balance != 60 || executed[1].Version != 1 {
			t.Fatalf("transfer: %+v %v", executed, err)
		}
		if _, err := flipbook.ExecuteStates(ctx(t), c, targets, transfer); err == nil || err.Error() != "insufficient funds" {
			t.Fatalf("a second transfer: %v", err)
		}
		_, err = flipbook.ExecuteStates(ctx(t), c, targets, func([]wallet) ([][]flipbook.EventData, error) {
			return [][]flipbook.EventData{{deposit(1)}}, nil
		})
		if !errors.Is(err, flipbook.ErrInvalidArgument) {
			t.Fatalf("one decision for two states: %v", err)
		}
	})
}

func TestCancellingAContextEndsTheCall(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("wallet")
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Head(cancelled, id); !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled context: %v", err)
		}
		// A decide that cancels its own command: nothing is appended, the command answers the
		// context's error.
		during, cancelDuring := context.WithCancel(context.Background())
		_, err := flipbook.Execute(during, c, id, wallets, func(wallet) ([]flipbook.EventData, error) {
			cancelDuring()
			return []flipbook.EventData{deposit(1)}, nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("execute: %v", err)
		}
		if _, err := c.Head(ctx(t), id); !errors.Is(err, flipbook.ErrNotFound) {
			t.Fatalf("nothing was appended: %v", err)
		}
		// A deadline during a subscription's wait for live events.
		short, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer stop()
		began := time.Now()
		var last error
		for _, err := range c.Subscribe(short, flipbook.SubscriptionQuery{FromNow: true, StateIDPrefix: id}).Events() {
			last = err
		}
		if !errors.Is(last, context.DeadlineExceeded) || time.Since(began) > 5*time.Second {
			t.Fatalf("subscription: %v after %v", last, time.Since(began))
		}
	})
}

type failingCodec struct{}

func (failingCodec) Encode(wallet) ([]byte, error) { return nil, errors.New("no encoding today") }
func (failingCodec) Decode([]byte) (wallet, error) { return wallet{}, errors.New("no decoding today") }

// A state the codec cannot encode is neither cached nor snapshotted, with a warning; the
// command stands (its events are stored by then: an error would invite a retry that stores
// them twice).
func TestAStateThatDoesNotEncodeIsNotCachedAndTheCommandStands(t *testing.T) {
	var logged bytes.Buffer
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	defer slog.SetDefault(previous)
	c, err := flipbook.InMemory(flipbook.WithSnapshotEvery(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	unencodable := wallets
	unencodable.Revision = "wallet-unencodable"
	unencodable.Codec = failingCodec{}
	executed, err := flipbook.Execute(ctx(t), c, "w-1", unencodable, depositOf(5))
	if err != nil || executed.Version != 1 || executed.State.Balance != 5 {
		t.Fatalf("the command: %+v %v", executed, err)
	}
	if !strings.Contains(logged.String(), "was not cached") || !strings.Contains(logged.String(), "no encoding today") {
		t.Fatalf("no warning: %q", logged.String())
	}
	if s, err := c.GetSnapshot(ctx(t), "w-1", unencodable.Revision, 0); err != nil || s != nil {
		t.Fatalf("a snapshot was written: %+v %v", s, err)
	}
	if loaded, err := flipbook.Load(ctx(t), c, "w-1", unencodable); err != nil || loaded.State.Balance != 5 {
		t.Fatalf("loaded %+v %v", loaded, err)
	}
}

// A snapshot the reducer cannot decode (its shape changed under the same revision) is passed
// over: the load folds from the beginning.
func TestASnapshotThatDoesNotDecodeIsPassedOver(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t, flipbook.WithCache(0, 0))
		id := newID("wallet")
		if _, err := c.Append(ctx(t), flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit(4), deposit(6)}}); err != nil {
			t.Fatal(err)
		}
		if err := c.PutSnapshot(ctx(t), flipbook.Snapshot{StateID: id, Version: 1, ReducerRevision: wallets.Revision, Payload: []byte(`"not a wallet"`)}); err != nil {
			t.Fatal(err)
		}
		loaded, err := flipbook.Load(ctx(t), c, id, wallets)
		if err != nil || loaded.State.Balance != 10 || loaded.State.Events != 2 {
			t.Fatalf("loaded %+v %v", loaded, err)
		}
	})
}
