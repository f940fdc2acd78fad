//go:build cgo

package flipbook_test

import (
	"context"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

func TestASubscriptionCatchesUpThenGoesLive(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		prefix := newID("sub")
		for i := range 3 {
			if _, err := c.Append(ctx(t), flipbook.Append{StateID: prefix + "-stored", Events: []flipbook.EventData{deposit(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		live, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		sub := c.Subscribe(live, flipbook.SubscriptionQuery{StateIDPrefix: prefix})
		writer := m.client(t)
		var got []flipbook.Event
		for event, err := range sub.Events() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, event)
			if sub.Position() != event.GlobalPosition {
				t.Fatalf("position %d at event %d", sub.Position(), event.GlobalPosition)
			}
			if len(got) == 3 { // caught up: append live ones from another client
				for i := range 2 {
					if _, err := writer.Append(ctx(t), flipbook.Append{StateID: prefix + "-live", Events: []flipbook.EventData{deposit(i)}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(got) == 5 {
				break
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i].GlobalPosition <= got[i-1].GlobalPosition {
				t.Fatalf("out of order: %+v", got)
			}
		}
		if got[3].StateID != prefix+"-live" {
			t.Fatalf("the live events: %+v", got[3:])
		}
		// Ranging again resumes after the position: the next event only.
		if _, err := writer.Append(ctx(t), flipbook.Append{StateID: prefix + "-later", Events: []flipbook.EventData{deposit(9)}}); err != nil {
			t.Fatal(err)
		}
		for event, err := range sub.Events() {
			if err != nil || event.StateID != prefix+"-later" {
				t.Fatalf("resumed at %+v %v", event, err)
			}
			break
		}
	})
}

func TestCheckpointsSayWhereToResume(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		c := m.client(t)
		prefix := newID("checkpoint")
		live, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		sub := c.Subscribe(live, flipbook.SubscriptionQuery{FromNow: true, StateIDPrefix: prefix})
		for message, err := range sub.WithCheckpoints() {
			if err != nil {
				t.Fatal(err)
			}
			// A subscription from now starts with a checkpoint: where "now" is.
			if message.Event != nil || message.Position != sub.Position() {
				t.Fatalf("the first message: %+v", message)
			}
			break
		}
		appended, err := c.Append(ctx(t), flipbook.Append{StateID: prefix + "-1", Events: []flipbook.EventData{deposit(1)}})
		if err != nil {
			t.Fatal(err)
		}
		for message, err := range sub.WithCheckpoints() {
			if err != nil {
				t.Fatal(err)
			}
			if message.Event != nil {
				if message.Event.GlobalPosition != appended.GlobalPositions[0] {
					t.Fatalf("resumed at %+v", message.Event)
				}
				break
			}
		}
	})
}
