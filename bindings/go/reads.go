//go:build cgo

package flipbook

/*
#include "callbacks.h"
*/
import "C"

import (
	"context"
	"iter"
	"time"
	"unsafe"
)

// StateQuery says which events of one state to read. Zero fields do not filter.
type StateQuery struct {
	StateID string
	// Backward reads newest first.
	Backward   bool
	MinVersion uint64
	MaxVersion uint64
	Limit      uint64
	// Names keeps only events with one of these names.
	Names []string
	// AsOf keeps only events whose domain time is at or before it.
	AsOf time.Time
}

// AllQuery says which events of the whole store to read, in global-position order. Zero fields
// do not filter.
type AllQuery struct {
	// After is exclusive: 0 reads from the beginning.
	After uint64
	// Until is inclusive.
	Until uint64
	// StateIDPrefix keeps only states whose id starts with it.
	StateIDPrefix string
	Names         []string
	Limit         uint64
	// Backward reads newest first, from Until down to After.
	Backward bool
}

// ReadState reads one state's events, a page at a time from the server as the loop asks for
// more. Breaking out of the loop (or ctx ending) ends the server's stream. An error is yielded
// once, last.
func (c *Client) ReadState(ctx context.Context, q StateQuery) iter.Seq2[Event, error] {
	return c.read(ctx, func(client *C.FbClient, failure **C.FbError) *C.FbPages {
		var in inputs
		defer in.release()
		names, count := in.texts(q.Names)
		native := C.FbStateQuery{
			state_id:        in.text(q.StateID),
			backward:        cBool(q.Backward),
			has_min_version: cBool(q.MinVersion > 0),
			min_version:     C.uint64_t(q.MinVersion),
			has_max_version: cBool(q.MaxVersion > 0),
			max_version:     C.uint64_t(q.MaxVersion),
			has_limit:       cBool(q.Limit > 0),
			limit:           C.uint64_t(q.Limit),
			names:           names,
			name_count:      count,
			has_as_of:       cBool(!q.AsOf.IsZero()),
		}
		if !q.AsOf.IsZero() {
			native.as_of_nanos = nanosOf(q.AsOf)
		}
		return C.fb_read_state(client, &native, failure)
	})
}

// ReadAll reads the whole store's events in global-position order, as ReadState reads one state.
func (c *Client) ReadAll(ctx context.Context, q AllQuery) iter.Seq2[Event, error] {
	return c.read(ctx, func(client *C.FbClient, failure **C.FbError) *C.FbPages {
		var in inputs
		defer in.release()
		names, count := in.texts(q.Names)
		native := C.FbAllQuery{
			after_position:     C.uint64_t(q.After),
			has_until_position: cBool(q.Until > 0),
			until_position:     C.uint64_t(q.Until),
			state_id_prefix:    in.text(q.StateIDPrefix),
			names:              names,
			name_count:         count,
			has_limit:          cBool(q.Limit > 0),
			limit:              C.uint64_t(q.Limit),
			backward:           cBool(q.Backward),
		}
		return C.fb_read_all(client, &native, failure)
	})
}

func (c *Client) read(ctx context.Context, start func(*C.FbClient, **C.FbError) *C.FbPages) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		pages, err := withClient(c, func(client *C.FbClient) (*C.FbPages, error) {
			var failure *C.FbError
			if pages := start(client, &failure); pages != nil {
				return pages, nil
			}
			return nil, takeError(failure)
		})
		if err != nil {
			yield(Event{}, err)
			return
		}
		defer C.fb_pages_free(pages)
		for {
			page, err := nextPage(ctx, func(userData unsafe.Pointer) *C.FbCall {
				return C.fb_pages_next(pages, C.FbPageDone(C.fbgo_page_done), userData)
			})
			if err != nil {
				yield(Event{}, err)
				return
			}
			if page == nil {
				return
			}
			for _, event := range page {
				if !yield(event, nil) {
					return
				}
			}
		}
	}
}

// nextPage awaits a page: nil at the end.
func nextPage(ctx context.Context, start func(unsafe.Pointer) *C.FbCall) ([]Event, error) {
	return await(ctx, func(value unsafe.Pointer, _ uint64) []Event {
		if value == nil {
			return nil
		}
		return eventsOf((*C.FbPage)(value))
	}, started(start))
}
