//go:build cgo

package flipbook

/*
#include "callbacks.h"
*/
import "C"

import (
	"context"
	"iter"
	"sync/atomic"
	"unsafe"
)

// SubscriptionQuery says where a subscription starts and which events it delivers. The zero
// value: every event of the store, stored ones first, then live ones.
type SubscriptionQuery struct {
	// After starts after this global position (exclusive): a subscriber's saved Position.
	After uint64
	// FromNow starts with the events settled after the subscription starts (After ignored).
	FromNow bool
	// StateIDPrefix keeps only states whose id starts with it.
	StateIDPrefix string
	Names         []string
}

// Subscription delivers the store's events in global-position order: the stored ones, then
// live ones as they are appended. It resumes by itself after a broken connection or a server
// restart (for the client's WithResumeFor), losing and repeating nothing. Range over it from one
// goroutine at a time; Position may be read from any.
type Subscription struct {
	ctx      context.Context
	client   *Client
	query    SubscriptionQuery
	position atomic.Uint64
	begun    atomic.Bool
}

// Subscribe starts a subscription when its Events are ranged over; ctx ending ends it.
func (c *Client) Subscribe(ctx context.Context, q SubscriptionQuery) *Subscription {
	return &Subscription{ctx: ctx, client: c, query: q}
}

// Position is where to resume from: every event at or below it was delivered or filtered out
// (the server's checkpoints move it on while filtered events pass). Save it with what the
// events changed; subscribe again with After set to it.
func (s *Subscription) Position() uint64 { return s.position.Load() }

// Message is what a subscription delivers: an event, or (Event nil) a checkpoint: every event
// at or below Position was delivered or filtered out.
type Message struct {
	Event    *Event
	Position uint64
}

// Events yields the events, a page from the core at a time. The loop ends when ctx ends
// (yielding ctx's error), on an error the core could not resume from, or when the loop breaks;
// ranging again goes on after Position.
func (s *Subscription) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for m, err := range s.WithCheckpoints() {
			if err != nil {
				yield(Event{}, err)
				return
			}
			if m.Event != nil && !yield(*m.Event, nil) {
				return
			}
		}
	}
}

// WithCheckpoints yields the events and the checkpoints between them, as Events yields events:
// a projection whose filter skips most events saves the checkpoints' positions too, so that it
// resumes past what it skipped.
func (s *Subscription) WithCheckpoints() iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		query := s.query
		if s.begun.Swap(true) {
			query.After, query.FromNow = s.Position(), false
		}
		native, err := withClient(s.client, func(client *C.FbClient) (*C.FbSubscription, error) {
			return subscribe(client, &query)
		})
		if err != nil {
			yield(Message{}, err)
			return
		}
		defer C.fb_subscription_free(native)
		for {
			next, err := await(s.ctx, messageOf, started(func(userData unsafe.Pointer) *C.FbCall {
				return C.fb_subscription_next(native, C.FbMessageDone(C.fbgo_message_done), userData)
			}))
			if err != nil {
				yield(Message{}, err)
				return
			}
			if next.ended {
				return
			}
			if next.checkpoint {
				s.position.Store(next.position)
				if !yield(Message{Position: next.position}, nil) {
					return
				}
				continue
			}
			for i := range next.events {
				event := &next.events[i]
				s.position.Store(event.GlobalPosition)
				if !yield(Message{Event: event, Position: event.GlobalPosition}, nil) {
					return
				}
			}
		}
	}
}

func subscribe(client *C.FbClient, query *SubscriptionQuery) (*C.FbSubscription, error) {
	var in inputs
	defer in.release()
	names, count := in.texts(query.Names)
	start := C.FbStart(C.FB_START_BEGINNING)
	if query.FromNow {
		start = C.FB_START_NOW
	} else if query.After > 0 {
		start = C.FB_START_AFTER
	}
	q := C.FbSubscriptionQuery{
		start:           uint32(start),
		after_position:  C.uint64_t(query.After),
		state_id_prefix: in.text(query.StateIDPrefix),
		names:           names,
		name_count:      count,
	}
	var failure *C.FbError
	if sub := C.fb_subscribe(client, &q, &failure); sub != nil {
		return sub, nil
	}
	return nil, takeError(failure)
}

type message struct {
	ended, checkpoint bool
	position          uint64
	events            []Event
}

func messageOf(value unsafe.Pointer, _ uint64) message {
	m := (*C.FbMessage)(value)
	switch {
	case m == nil:
		return message{ended: true}
	case bool(m.is_checkpoint):
		return message{checkpoint: true, position: uint64(m.checkpoint)}
	default:
		return message{events: eventsOf(&m.page)}
	}
}
