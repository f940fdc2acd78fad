//go:build cgo

package flipbook

/*
#include "flipbook.h"
*/
import "C"

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// ID is an event's id, a UUID. The zero ID asks the core to make one.
type ID [16]byte

// String is the id in its canonical form, "6ba7b810-9dad-11d1-80b4-00c04fd430c8".
func (id ID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// ParseID reads an id in its canonical form (hyphens optional).
func ParseID(s string) (ID, error) {
	var id ID
	digits := strings.ReplaceAll(s, "-", "")
	if len(digits) != 32 {
		return id, invalid("id", "must be a UUID")
	}
	if _, err := hex.Decode(id[:], []byte(digits)); err != nil {
		return id, invalid("id", "must be a UUID")
	}
	return id, nil
}

// EventData is an event to append.
type EventData struct {
	Name string
	// Data is encoded as JSON (content type application/json) unless Payload is set; nil
	// Data and Payload: {}.
	Data any
	// Payload is the event's bytes as they are (content type application/octet-stream unless
	// ContentType says otherwise).
	Payload     []byte
	ContentType string
	// ID re-sends the same event when it is the same; zero: the core makes one.
	ID ID
	// Timestamp is when it happened in the domain; zero: time-neutral.
	Timestamp time.Time
	Metadata  map[string]string
	// Version is an explicit version (every event of an append has one, or none has); 0: none.
	Version uint64
}

// Event is an event as the store recorded it.
type Event struct {
	StateID string
	// Version is the event's version in its state (1 for the first); 0 in a version-neutral state.
	Version        uint64
	GlobalPosition uint64
	ID             ID
	Name           string
	Payload        []byte
	ContentType    string
	// Timestamp is the domain time the event was appended with; zero: none.
	Timestamp  time.Time
	RecordedAt time.Time
	Metadata   map[string]string
}

// Decode unmarshals the event's JSON payload into v.
func (e Event) Decode(v any) error { return json.Unmarshal(e.Payload, v) }

// Expected is what an append expects of the state's version. The zero value: any version.
type Expected struct {
	kind    C.FbExpected
	version uint64
}

var (
	// ExpectAny appends whatever the state's version.
	ExpectAny = Expected{kind: C.FB_EXPECT_ANY}
	// ExpectNoState appends only to a state with no events.
	ExpectNoState = Expected{kind: C.FB_EXPECT_NO_STATE}
)

// ExpectVersion appends only when the state is at exactly this version.
func ExpectVersion(version uint64) Expected {
	return Expected{kind: C.FB_EXPECT_EXACTLY, version: version}
}

// Append is one state's part of an append.
type Append struct {
	StateID  string
	Events   []EventData
	Expected Expected
	// VersionNeutral makes (or expects) a state whose events carry no version.
	VersionNeutral bool
	// StateMetadata is merged into the state's metadata.
	StateMetadata map[string]string
}

// AppendResult is what an append stored.
type AppendResult struct {
	// LastVersion is the state's version after the append; 0 for a version-neutral state.
	LastVersion uint64
	// GlobalPositions of the stored events, in the order sent.
	GlobalPositions []uint64
	RecordedAt      time.Time
}

func timeOf(nanos C.int64_t) time.Time { return time.Unix(0, int64(nanos)).UTC() }

func nanosOf(t time.Time) C.int64_t { return C.int64_t(t.UnixNano()) }

func appendResultOf(o *C.FbAppendOutcome) AppendResult {
	positions := make([]uint64, int(o.count))
	if o.count > 0 {
		copy(positions, unsafe.Slice((*uint64)(unsafe.Pointer(o.global_positions)), int(o.count)))
	}
	return AppendResult{LastVersion: uint64(o.last_version), GlobalPositions: positions, RecordedAt: timeOf(o.recorded_at_nanos)}
}

func (in *inputs) metadata(m map[string]string, field string) (C.FbView, error) {
	if len(m) == 0 {
		return C.FbView{}, nil
	}
	encoded, err := json.Marshal(m)
	if err != nil {
		return C.FbView{}, invalid(field, err.Error())
	}
	return in.bytes(encoded), nil
}

func (in *inputs) event(e *EventData, path string) (C.FbEventInput, error) {
	payload, contentType := e.Payload, e.ContentType
	if payload == nil {
		data := e.Data
		if data == nil {
			data = struct{}{}
		}
		encoded, err := json.Marshal(data)
		if err != nil {
			return C.FbEventInput{}, invalid(path+".data", "must encode as JSON: "+err.Error())
		}
		payload = encoded
		if contentType == "" {
			contentType = "application/json"
		}
	} else if contentType == "" {
		contentType = "application/octet-stream"
	}
	metadata, err := in.metadata(e.Metadata, path+".metadata")
	if err != nil {
		return C.FbEventInput{}, err
	}
	native := C.FbEventInput{
		name:          in.text(e.Name),
		payload:       in.bytes(payload),
		content_type:  in.text(contentType),
		has_timestamp: cBool(!e.Timestamp.IsZero()),
		metadata_json: metadata,
		has_version:   cBool(e.Version != 0),
		version:       C.uint64_t(e.Version),
	}
	if !e.Timestamp.IsZero() {
		native.timestamp_nanos = nanosOf(e.Timestamp)
	}
	if e.ID != (ID{}) {
		id := e.ID
		native.event_id = (*C.uint8_t)(unsafe.Pointer(&id[0]))
		in.pinner.Pin(&id[0])
	}
	return native, nil
}

func (in *inputs) events(events []EventData, path string) (*C.FbEventInput, C.size_t, error) {
	natives := make([]C.FbEventInput, len(events))
	for i := range events {
		native, err := in.event(&events[i], fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, 0, err
		}
		natives[i] = native
	}
	return array(in, natives), C.size_t(len(natives)), nil
}

func (in *inputs) append(a *Append, prefix string) (C.FbAppendInput, error) {
	events, count, err := in.events(a.Events, prefix+"events")
	if err != nil {
		return C.FbAppendInput{}, err
	}
	metadata, err := in.metadata(a.StateMetadata, prefix+"state_metadata")
	if err != nil {
		return C.FbAppendInput{}, err
	}
	return C.FbAppendInput{
		state_id:            in.text(a.StateID),
		events:              events,
		event_count:         count,
		expected:            uint32(a.Expected.kind),
		expected_version:    C.uint64_t(a.Expected.version),
		version_neutral:     cBool(a.VersionNeutral),
		state_metadata_json: metadata,
	}, nil
}

// eventsOf copies a page the core lends into Go values: the payloads into one buffer for the
// page (one allocation, not one per event), and a state's events share their state id, name and
// content type strings with the event before when they are the same.
func eventsOf(page *C.FbPage) []Event {
	natives := unsafe.Slice(page.events, int(page.count))
	size := 0
	for i := range natives {
		size += int(natives[i].payload.len)
	}
	payloads := make([]byte, 0, size)
	events := make([]Event, len(natives))
	var stateID, name, contentType string // the event before's
	for i := range natives {
		n := &natives[i]
		e := &events[i]
		stateID, name, contentType = reuse(stateID, n.state_id), reuse(name, n.name), reuse(contentType, n.content_type)
		e.StateID, e.Name, e.ContentType = stateID, name, contentType
		if n.has_version {
			e.Version = uint64(n.version)
		}
		e.GlobalPosition = uint64(n.global_position)
		e.ID = *(*ID)(unsafe.Pointer(&n.event_id))
		if n.payload.len > 0 {
			start := len(payloads)
			payloads = append(payloads, view(n.payload)...)
			e.Payload = payloads[start:len(payloads):len(payloads)] // full: an append to it copies
		}
		if n.has_timestamp {
			e.Timestamp = timeOf(n.timestamp_nanos)
		}
		e.RecordedAt = timeOf(n.recorded_at_nanos)
		if n.metadata_json.len > 0 {
			_ = json.Unmarshal(view(n.metadata_json), &e.Metadata) // the core wrote it: an object of strings
		}
	}
	return events
}

// reuse answers previous when the view holds the same text, else a new string of it.
func reuse(previous string, v C.FbView) string {
	if b := view(v); string(b) != previous {
		return string(b)
	}
	return previous
}
