//go:build cgo

package flipbook_test

import (
	"errors"
	"testing"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

func deposit(amount int) flipbook.EventData {
	return flipbook.EventData{Name: "Deposited", Data: map[string]int{"amount": amount}}
}

func TestAppendReadHead(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("wallet")
		result, err := c.Append(ctx(t), flipbook.Append{
			StateID:  id,
			Events:   []flipbook.EventData{deposit(10), deposit(20), {Name: "Tagged", Payload: []byte{0, 1, 2}, Metadata: map[string]string{"by": "test"}}},
			Expected: flipbook.ExpectNoState,
		})
		if err != nil {
			t.Fatal(err)
		}
		if result.LastVersion != 3 || len(result.GlobalPositions) != 3 {
			t.Fatalf("appended %+v", result)
		}
		events := collect(t, c.ReadState(ctx(t), flipbook.StateQuery{StateID: id}))
		if len(events) != 3 {
			t.Fatalf("read %d events", len(events))
		}
		for i, e := range events {
			if e.StateID != id || e.Version != uint64(i+1) || e.GlobalPosition != result.GlobalPositions[i] {
				t.Fatalf("event %d: %+v", i, e)
			}
		}
		var amount struct{ Amount int }
		if err := events[1].Decode(&amount); err != nil || amount.Amount != 20 || events[1].ContentType != "application/json" {
			t.Fatalf("event 2: %+v %v", amount, err)
		}
		if string(events[2].Payload) != "\x00\x01\x02" || events[2].ContentType != "application/octet-stream" || events[2].Metadata["by"] != "test" {
			t.Fatalf("event 3: %+v", events[2])
		}
		backward := collect(t, c.ReadState(ctx(t), flipbook.StateQuery{StateID: id, Backward: true, Limit: 2}))
		if len(backward) != 2 || backward[0].Version != 3 || backward[1].Version != 2 {
			t.Fatalf("backward: %+v", backward)
		}
		if parsed, err := flipbook.ParseID(events[0].ID.String()); err != nil || parsed != events[0].ID {
			t.Fatalf("the id %s does not read back: %v", events[0].ID, err)
		}
		head, err := c.Head(ctx(t), id)
		if err != nil || head.EventCount != 3 || head.LastGlobalPosition != result.GlobalPositions[2] || head.VersionNeutral {
			t.Fatalf("head %+v %v", head, err)
		}
	})
}

func TestAConflictNamesTheActualVersionAndStoresNothing(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("wallet")
		if _, err := c.Append(ctx(t), flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit(1), deposit(2)}}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Append(ctx(t), flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit(3)}, Expected: flipbook.ExpectVersion(1)})
		var fe *flipbook.Error
		if !errors.Is(err, flipbook.ErrVersionConflict) || !errors.As(err, &fe) {
			t.Fatalf("got %v", err)
		}
		if fe.Code != flipbook.CodeVersionConflict || !fe.HasActualVersion || fe.ActualVersion != 2 || fe.StateID != id || fe.Retryable {
			t.Fatalf("error %+v", fe)
		}
		if errors.Is(err, flipbook.ErrNotFound) {
			t.Fatal("a conflict is not a not-found")
		}
		if head, _ := c.Head(ctx(t), id); head.EventCount != 2 {
			t.Fatalf("head after the conflict: %+v", head)
		}
	})
}

func TestBadInputIsRefusedWithTheFieldAtFault(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("bad")
		cases := []struct {
			append flipbook.Append
			field  string
		}{
			{flipbook.Append{StateID: "", Events: []flipbook.EventData{deposit(1)}}, "state_id"},
			{flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit(1), {Name: ""}}}, "events[1].name"},
			{flipbook.Append{StateID: id, Events: []flipbook.EventData{{Name: "X", Data: func() {}}}}, "events[0].data"},
		}
		for _, tc := range cases {
			_, err := c.Append(ctx(t), tc.append)
			var fe *flipbook.Error
			if !errors.Is(err, flipbook.ErrInvalidArgument) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("%s: got %v (%+v)", tc.field, err, fe)
			}
		}
		_, err := c.AppendStates(ctx(t), flipbook.Append{StateID: id + "-a", Events: []flipbook.EventData{deposit(1)}},
			flipbook.Append{StateID: id + "-b", Events: []flipbook.EventData{{Name: ""}}})
		var fe *flipbook.Error
		if !errors.As(err, &fe) || fe.Field != "parts[1].events[0].name" {
			t.Fatalf("parts: got %v", err)
		}
		if _, err := c.Head(ctx(t), id); !errors.Is(err, flipbook.ErrNotFound) {
			t.Fatalf("nothing was stored: head answered %v", err)
		}
		for _, err := range c.ReadState(ctx(t), flipbook.StateQuery{StateID: ""}) {
			if !errors.Is(err, flipbook.ErrInvalidArgument) {
				t.Fatalf("read of no state: %v", err)
			}
		}
	})
}

func TestAppendStatesIsAtomic(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		from, to := newID("from"), newID("to")
		results, err := c.AppendStates(ctx(t),
			flipbook.Append{StateID: from, Events: []flipbook.EventData{deposit(-5)}, Expected: flipbook.ExpectNoState},
			flipbook.Append{StateID: to, Events: []flipbook.EventData{deposit(5), deposit(1)}, Expected: flipbook.ExpectNoState})
		if err != nil || len(results) != 2 || results[0].LastVersion != 1 || results[1].LastVersion != 2 {
			t.Fatalf("append states: %+v %v", results, err)
		}
		_, err = c.AppendStates(ctx(t),
			flipbook.Append{StateID: from, Events: []flipbook.EventData{deposit(-1)}, Expected: flipbook.ExpectVersion(1)},
			flipbook.Append{StateID: to, Events: []flipbook.EventData{deposit(1)}, Expected: flipbook.ExpectVersion(1)})
		var fe *flipbook.Error
		if !errors.As(err, &fe) || fe.Code != flipbook.CodeVersionConflict || fe.StateID != to || fe.ActualVersion != 2 {
			t.Fatalf("stale part: %v", err)
		}
		if head, _ := c.Head(ctx(t), from); head.EventCount != 1 {
			t.Fatalf("the other part was stored: %+v", head)
		}
	})
}

func TestReadAllAndTheLogHead(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		prefix := newID("all")
		var positions []uint64
		for i := range 3 {
			r, err := c.Append(ctx(t), flipbook.Append{StateID: prefix + "-" + string(rune('a'+i)), Events: []flipbook.EventData{deposit(i)}})
			if err != nil {
				t.Fatal(err)
			}
			positions = append(positions, r.GlobalPositions[0])
		}
		events := collect(t, c.ReadAll(ctx(t), flipbook.AllQuery{StateIDPrefix: prefix}))
		if len(events) != 3 || events[0].GlobalPosition != positions[0] || events[2].GlobalPosition != positions[2] {
			t.Fatalf("read all: %+v", events)
		}
		after := collect(t, c.ReadAll(ctx(t), flipbook.AllQuery{StateIDPrefix: prefix, After: positions[0], Limit: 1}))
		if len(after) != 1 || after[0].GlobalPosition != positions[1] {
			t.Fatalf("after: %+v", after)
		}
		head, err := c.LogHead(ctx(t))
		if err != nil || head.SettledPosition < positions[2] || head.EventCount < 3 {
			t.Fatalf("log head %+v %v", head, err)
		}
		info, err := c.ServerInfo(ctx(t))
		if err != nil || info.ServerVersion == "" || info.EventBackend == "" || info.MaxEventsPerAppend == 0 {
			t.Fatalf("server info %+v %v", info, err)
		}
	})
}

func TestSnapshots(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		id := newID("snap")
		if s, err := c.GetSnapshot(ctx(t), id, "v1", 0); err != nil || s != nil {
			t.Fatalf("none yet: %+v %v", s, err)
		}
		for _, v := range []uint64{3, 7} {
			if err := c.PutSnapshot(ctx(t), flipbook.Snapshot{StateID: id, Version: v, ReducerRevision: "v1", Payload: []byte(`{"v":1}`)}); err != nil {
				t.Fatal(err)
			}
		}
		s, err := c.GetSnapshot(ctx(t), id, "v1", 5)
		if err != nil || s == nil || s.Version != 3 || string(s.Payload) != `{"v":1}` || s.ContentType != "application/json" || s.CreatedAt.IsZero() {
			t.Fatalf("at or below 5: %+v %v", s, err)
		}
		if n, err := c.DeleteSnapshots(ctx(t), id); err != nil || n != 2 {
			t.Fatalf("deleted %d %v", n, err)
		}
	})
}

func TestCallsAfterCloseFailClosed(t *testing.T) {
	c, err := flipbook.InMemory()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("closing again: %v", err)
	}
	if _, err := c.Head(ctx(t), "x"); !errors.Is(err, flipbook.ErrClosed) {
		t.Fatalf("head after close: %v", err)
	}
	for _, err := range c.ReadState(ctx(t), flipbook.StateQuery{StateID: "x"}) {
		if !errors.Is(err, flipbook.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
}
