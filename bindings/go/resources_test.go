//go:build cgo

package flipbook_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

// eventually polls until check holds, for up to 10 s.
func eventually(check func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if check() {
			return true
		}
	}
	return check()
}

func TestCloseLeavesNoThreadOrGoroutineBehind(t *testing.T) {
	inEveryMode(t, func(t *testing.T, m mode) {
		threads, goroutines := flipbook.LiveThreads(), runtime.NumGoroutine()
		var c *flipbook.Client
		var err error
		if m.url != "" {
			c, err = flipbook.Connect(ctx(t), m.url)
		} else {
			c, err = flipbook.OpenEmbedded(filepath.Join(scratchRoot, newID("leak")+".db"))
		}
		if err != nil {
			t.Fatal(err)
		}
		id := newID("leak")
		if _, err := flipbook.Execute(ctx(t), c, id, wallets, depositOf(1)); err != nil {
			t.Fatal(err)
		}
		if flipbook.LiveThreads() <= threads {
			t.Fatal("the client runs no thread of its own: nothing to check")
		}
		// A subscription waiting for live events while the client closes: it ends with ErrClosed.
		ended := make(chan error, 1)
		go func() {
			var last error
			for _, err := range c.Subscribe(context.Background(), flipbook.SubscriptionQuery{FromNow: true, StateIDPrefix: id}).Events() {
				last = err
			}
			ended <- last
		}()
		time.Sleep(50 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-ended:
			if err == nil {
				t.Fatal("the subscription ended without an error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the subscription did not end with its client")
		}
		if !eventually(func() bool { return flipbook.LiveThreads() == threads }) {
			t.Fatalf("%d core threads left behind", flipbook.LiveThreads()-threads)
		}
		if !eventually(func() bool { return runtime.NumGoroutine() <= goroutines }) {
			t.Fatalf("%d goroutines left behind", runtime.NumGoroutine()-goroutines)
		}
	})
}

// rss is this process's resident memory in bytes.
func rss(t *testing.T) int64 {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(statm))[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Against a server: the store grows there, so what grows here is the client's.
func TestMemoryStaysFlatAcross10000Calls(t *testing.T) {
	c := modes(t)[0].client(t)
	ctx := ctx(t) // one for all: a context per call would be what grows
	calls := func(n int) {
		for i := range n {
			id := "rss-" + strconv.Itoa(i%100)
			if _, err := c.Append(ctx, flipbook.Append{StateID: id, Events: []flipbook.EventData{deposit(i)}}); err != nil {
				t.Fatal(err)
			}
			for _, err := range c.ReadState(ctx, flipbook.StateQuery{StateID: id, Backward: true, Limit: 1}) {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	calls(1_000) // warm up: the allocators' pools, the connection's buffers
	runtime.GC()
	before := rss(t)
	calls(5_000) // 10,000 calls: 5,000 appends, 5,000 reads
	runtime.GC()
	grown := rss(t) - before
	t.Logf("RSS grew by %.1f MiB across 10,000 calls", float64(grown)/(1<<20))
	if grown > 16<<20 {
		t.Fatalf("RSS grew by %d bytes", grown)
	}
}

// A connect cancelled while it waits (a server that accepts and never answers) answers the
// context's error and leaves no thread behind.
func TestACancelledConnectLeavesNothingBehind(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // held open, silent
		}
	}()
	threads := flipbook.LiveThreads()
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	c, err := flipbook.Connect(short, "http://"+listener.Addr().String(), flipbook.WithTimeouts(30*time.Second, 30*time.Second))
	if err == nil {
		_ = c.Close()
		t.Fatal("a silent server answered the connect")
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > 5*time.Second {
		t.Fatalf("connect: %v after %v", err, time.Since(began))
	}
	if !eventually(func() bool { return flipbook.LiveThreads() == threads }) {
		t.Fatalf("%d core threads left behind", flipbook.LiveThreads()-threads)
	}
}
