//go:build cgo

package flipbook

/*
#include "callbacks.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
	"unsafe"
)

// Client is a client of a Flipbook server, of an embedded store (an SQLite file) or of a store
// in memory. It is safe for concurrent use; make one per process and share it.
type Client struct {
	// Held for reading while a call starts (the core copies its inputs then); Close takes it
	// for writing to free the native client.
	mu     sync.RWMutex
	native *C.FbClient
}

// Option configures a client.
type Option func(*settings)

type settings struct {
	token, tlsDomain               string
	caCertificate                  []byte
	connectTimeout, requestTimeout time.Duration
	core                           C.FbClientOptions
}

func newSettings(options []Option) *settings {
	s := &settings{}
	C.fb_client_options_default(&s.core)
	for _, option := range options {
		option(s)
	}
	return s
}

// WithToken sends a bearer token (the server's --auth-token) with every call.
func WithToken(token string) Option { return func(s *settings) { s.token = token } }

// WithCACertificate trusts this PEM CA certificate for an https:// server.
func WithCACertificate(pem []byte) Option { return func(s *settings) { s.caCertificate = pem } }

// WithTLSDomain checks the server's certificate for this name instead of the URL's host.
func WithTLSDomain(name string) Option { return func(s *settings) { s.tlsDomain = name } }

// WithTimeouts sets how long connecting may take, and each call (0 keeps the default).
func WithTimeouts(connect, request time.Duration) Option {
	return func(s *settings) { s.connectTimeout, s.requestTimeout = connect, request }
}

// WithRetries sets the decide-and-append rounds a command takes before it gives up with the
// conflict (at least 1; default 10) and how many times an append whose answer was lost is
// re-sent with the same event ids (default 5).
func WithRetries(maxTries, maxResends uint32) Option {
	return func(s *settings) { s.core.max_tries, s.core.max_resends = C.uint32_t(maxTries), C.uint32_t(maxResends) }
}

// WithRetryDelays sets the backoff between retries: it grows from first to max, with jitter.
func WithRetryDelays(first, max time.Duration) Option {
	return func(s *settings) {
		s.core.first_delay_millis, s.core.max_delay_millis = millis(first), millis(max)
	}
}

// WithResumeFor sets how long a subscription keeps resuming while every attempt fails (a
// server restarting) before its error reaches the subscriber (default 30 s).
func WithResumeFor(d time.Duration) Option {
	return func(s *settings) { s.core.resume_for_millis = millis(d) }
}

// WithCache bounds the client's cache of reduced states (entries 0: no cache).
func WithCache(entries, bytes uint64) Option {
	return func(s *settings) { s.core.cache_entries, s.core.cache_bytes = C.uint64_t(entries), C.uint64_t(bytes) }
}

// WithSnapshotEvery writes a snapshot once this many events were folded since the last one
// (default 100; 0: never).
func WithSnapshotEvery(events uint64) Option {
	return func(s *settings) { s.core.snapshot_every = C.uint64_t(events) }
}

func millis(d time.Duration) C.uint64_t {
	if d < 0 {
		return 0
	}
	return C.uint64_t(d.Milliseconds())
}

// Connect connects to a server: "http://host:7420", or "https://…" with WithCACertificate.
func Connect(ctx context.Context, url string, options ...Option) (*Client, error) {
	s := newSettings(options)
	var in inputs
	defer in.release()
	connect := C.FbConnectOptions{
		token:                  in.text(s.token),
		ca_certificate:         in.bytes(s.caCertificate),
		tls_domain:             in.text(s.tlsDomain),
		connect_timeout_millis: millis(s.connectTimeout),
		request_timeout_millis: millis(s.requestTimeout),
	}
	return open(ctx, func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_client_connect(in.text(url), &connect, &s.core, C.FbClientDone(C.fbgo_client_done), userData)
	})
}

// OpenEmbedded opens (or creates) an embedded store in an SQLite file: no server.
func OpenEmbedded(path string, options ...Option) (*Client, error) {
	s := newSettings(options)
	var in inputs
	defer in.release()
	return open(context.Background(), func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_client_open_embedded(in.text(path), &s.core, C.FbClientDone(C.fbgo_client_done), userData)
	})
}

// InMemory is a store in this process's memory, gone with the client: for tests.
func InMemory(options ...Option) (*Client, error) {
	s := newSettings(options)
	return open(context.Background(), func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_client_in_memory(&s.core, C.FbClientDone(C.fbgo_client_done), userData)
	})
}

func open(ctx context.Context, start func(unsafe.Pointer) *C.FbCall) (*Client, error) {
	native, err := await(ctx, func(value unsafe.Pointer, _ uint64) *C.FbClient { return (*C.FbClient)(value) }, started(start))
	if err != nil {
		return nil, err
	}
	return &Client{native: native}, nil
}

// call starts a native call on the client and awaits it, or answers ErrClosed after Close.
func call[T any](ctx context.Context, c *Client, convert func(unsafe.Pointer, uint64) T, start func(*C.FbClient, unsafe.Pointer) *C.FbCall) (T, error) {
	return await(ctx, convert, func(userData unsafe.Pointer) (*C.FbCall, error) {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.native == nil {
			return nil, errClosed()
		}
		return start(c.native, userData), nil
	})
}

// withClient runs start with the native client (a handle-making call that does not wait), or
// answers ErrClosed after Close.
func withClient[T any](c *Client, start func(*C.FbClient) (T, error)) (T, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.native == nil {
		var zero T
		return zero, errClosed()
	}
	return start(c.native)
}

func errClosed() *Error { return &Error{Code: CodeClosed, Message: "the client is closed"} }

// succeeded is the conversion of a call that answers nothing but success.
var succeeded func(unsafe.Pointer, uint64) struct{}

// Close waits for the snapshots being written, releases an embedded file and stops the
// client's threads. Calls after it, and reads and subscriptions begun before, fail with
// ErrClosed. Closing again does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.native == nil {
		return nil
	}
	_, err := await(context.Background(), succeeded, started(func(userData unsafe.Pointer) *C.FbCall {
		return C.fb_client_close(c.native, C.FbDone(C.fbgo_done), userData)
	}))
	C.fb_client_free(c.native)
	c.native = nil
	return err
}

// liveThreads is the number of threads every client's core runs now (tests check that Close
// stops them).
func liveThreads() int { return int(C.fb_live_threads()) }
