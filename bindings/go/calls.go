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
	"time"
	"unsafe"
)

// Append appends events to one state, atomically. An append whose answer was lost is re-sent
// with the same event ids, so it is stored once.
func (c *Client) Append(ctx context.Context, a Append) (AppendResult, error) {
	var in inputs
	defer in.release()
	native, err := in.append(&a, "")
	if err != nil {
		return AppendResult{}, err
	}
	return call(ctx, c, func(value unsafe.Pointer, _ uint64) AppendResult {
		return appendResultOf((*C.FbAppendOutcome)(value))
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_append(client, &native, C.FbAppendDone(C.fbgo_append_done), userData)
	})
}

// AppendStates appends to several states in one atomic append: every part is stored, or none
// is (a conflict names its state in Error.StateID). Results are in the order of parts.
func (c *Client) AppendStates(ctx context.Context, parts ...Append) ([]AppendResult, error) {
	var in inputs
	defer in.release()
	natives := make([]C.FbAppendInput, len(parts))
	for i := range parts {
		native, err := in.append(&parts[i], fmt.Sprintf("parts[%d].", i))
		if err != nil {
			return nil, err
		}
		natives[i] = native
	}
	first := array(&in, natives)
	return call(ctx, c, func(value unsafe.Pointer, count uint64) []AppendResult {
		outcomes := unsafe.Slice((*C.FbAppendOutcome)(value), int(count))
		results := make([]AppendResult, len(outcomes))
		for i := range outcomes {
			results[i] = appendResultOf(&outcomes[i])
		}
		return results
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_append_states(client, first, C.size_t(len(natives)), C.FbAppendStatesDone(C.fbgo_append_states_done), userData)
	})
}

// Head is a state's head: what it holds without reading its events.
type Head struct {
	StateID        string
	VersionNeutral bool
	// EventCount is the number of events; for a versioned state also its last version.
	EventCount         uint64
	LastGlobalPosition uint64
	FirstRecordedAt    time.Time
	LastRecordedAt     time.Time
	Metadata           map[string]string
}

// Head answers a state's head; ErrNotFound when it has no events.
func (c *Client) Head(ctx context.Context, stateID string) (Head, error) {
	var in inputs
	defer in.release()
	return call(ctx, c, func(value unsafe.Pointer, _ uint64) Head {
		h := (*C.FbHead)(value)
		head := Head{
			StateID:            goString(h.state_id),
			VersionNeutral:     bool(h.version_neutral),
			EventCount:         uint64(h.event_count),
			LastGlobalPosition: uint64(h.last_global_position),
			FirstRecordedAt:    timeOf(h.first_recorded_at_nanos),
			LastRecordedAt:     timeOf(h.last_recorded_at_nanos),
			Metadata:           map[string]string{},
		}
		_ = json.Unmarshal(view(h.metadata_json), &head.Metadata) // the core wrote it: an object of strings
		return head
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_head(client, in.text(stateID), C.FbHeadDone(C.fbgo_head_done), userData)
	})
}

// LogHead is the head of the whole log.
type LogHead struct {
	// SettledPosition: every event at or below it is visible, and none can still appear there.
	SettledPosition uint64
	// EventCount is the number of events at or below the settled position.
	EventCount uint64
}

// LogHead answers how far the whole log is settled.
func (c *Client) LogHead(ctx context.Context) (LogHead, error) {
	return call(ctx, c, func(value unsafe.Pointer, _ uint64) LogHead {
		h := (*C.FbLogHead)(value)
		return LogHead{SettledPosition: uint64(h.settled_position), EventCount: uint64(h.event_count)}
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_log_head(client, C.FbLogHeadDone(C.fbgo_log_head_done), userData)
	})
}

// ServerInfo is what the server (or the embedded store) runs on and accepts.
type ServerInfo struct {
	ServerVersion      string
	EventBackend       string
	SnapshotBackend    string
	Durable            bool
	MaxEventsPerAppend uint32
	MaxStatesPerAppend uint32
	MaxPayloadBytes    uint64
	MaxSnapshotBytes   uint64
}

// ServerInfo answers what the server runs on and its limits.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	return call(ctx, c, func(value unsafe.Pointer, _ uint64) ServerInfo {
		i := (*C.FbServerInfo)(value)
		return ServerInfo{
			ServerVersion:      goString(i.server_version),
			EventBackend:       goString(i.event_backend),
			SnapshotBackend:    goString(i.snapshot_backend),
			Durable:            bool(i.durable),
			MaxEventsPerAppend: uint32(i.max_events_per_append),
			MaxStatesPerAppend: uint32(i.max_states_per_append),
			MaxPayloadBytes:    uint64(i.max_payload_bytes),
			MaxSnapshotBytes:   uint64(i.max_snapshot_bytes),
		}
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_server_info(client, C.FbServerInfoDone(C.fbgo_server_info_done), userData)
	})
}

// Snapshot is a reduced state saved at a version by one reducer revision.
type Snapshot struct {
	StateID         string
	Version         uint64
	ReducerRevision string
	Payload         []byte
	// ContentType of the payload; empty when putting: application/json.
	ContentType string
	// CreatedAt is stamped by the core when putting.
	CreatedAt time.Time
}

// PutSnapshot saves a snapshot. Load and Execute write snapshots themselves (WithSnapshotEvery).
func (c *Client) PutSnapshot(ctx context.Context, s Snapshot) error {
	var in inputs
	defer in.release()
	native := C.FbSnapshot{
		state_id:         in.text(s.StateID),
		version:          C.uint64_t(s.Version),
		reducer_revision: in.text(s.ReducerRevision),
		payload:          in.bytes(s.Payload),
		content_type:     in.text(s.ContentType),
	}
	_, err := call(ctx, c, succeeded, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_put_snapshot(client, &native, C.FbDone(C.fbgo_done), userData)
	})
	return err
}

// GetSnapshot answers the newest snapshot of the revision at or below maxVersion (0: any
// version), or nil when there is none.
func (c *Client) GetSnapshot(ctx context.Context, stateID, reducerRevision string, maxVersion uint64) (*Snapshot, error) {
	var in inputs
	defer in.release()
	return call(ctx, c, func(value unsafe.Pointer, _ uint64) *Snapshot {
		s := (*C.FbSnapshot)(value)
		if s == nil {
			return nil
		}
		return &Snapshot{
			StateID:         goString(s.state_id),
			Version:         uint64(s.version),
			ReducerRevision: goString(s.reducer_revision),
			Payload:         goBytes(s.payload),
			ContentType:     goString(s.content_type),
			CreatedAt:       timeOf(s.created_at_nanos),
		}
	}, func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
		return C.fb_get_snapshot(client, in.text(stateID), in.text(reducerRevision), cBool(maxVersion > 0),
			C.uint64_t(maxVersion), C.FbSnapshotDone(C.fbgo_snapshot_done), userData)
	})
}

// DeleteSnapshots deletes a state's snapshots, of every revision, and answers how many there were.
func (c *Client) DeleteSnapshots(ctx context.Context, stateID string) (uint64, error) {
	var in inputs
	defer in.release()
	return call(ctx, c, func(_ unsafe.Pointer, count uint64) uint64 { return count },
		func(client *C.FbClient, userData unsafe.Pointer) *C.FbCall {
			return C.fb_delete_snapshots(client, in.text(stateID), C.FbCountDone(C.fbgo_count_done), userData)
		})
}
