// Package flipbook is the Go client of Flipbook, an event store: append events to states with
// optimistic concurrency, read them back, subscribe to the store's events, and load and execute
// commands on states folded by a Reducer, with the retries, idempotent re-sends, snapshots and
// caching done by Flipbook's Rust core, which runs in the process through cgo.
//
// A Client talks to a server (Connect), an embedded SQLite file (OpenEmbedded) or memory
// (InMemory). Every call takes a context.Context: ending it ends the native call promptly and
// the call answers the context's error. Failures are *Error values with a Code; errors.Is
// matches them against the sentinels (ErrVersionConflict, ErrNotFound, …).
package flipbook
