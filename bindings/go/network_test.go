//go:build cgo

package flipbook_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

// inEveryServer runs the test against each server (not embedded: it needs a network).
func inEveryServer(t *testing.T, test func(t *testing.T, m mode)) {
	for _, m := range modes(t) {
		if m.url != "" {
			t.Run(m.name, func(t *testing.T) { test(t, m) })
		}
	}
}

func TestConcurrentDepositsThroughAFlakyNetworkEachLandOnce(t *testing.T) {
	inEveryServer(t, func(t *testing.T, m mode) {
		proxy := startProxy(t, m.url)
		// As an application on a flaky network configures it: conflicts and lost answers are
		// retried long enough to outlast the cuts (the core re-sends with the same event ids).
		options := []flipbook.Option{flipbook.WithRetries(100, 50), flipbook.WithRetryDelays(5*time.Millisecond, 200*time.Millisecond)}
		clients := []*flipbook.Client{connectTo(proxy.url)(t, options...), connectTo(proxy.url)(t, options...)}
		id := newID("contended")
		stop := make(chan struct{})
		cuts := 0
		chaos := sync.WaitGroup{}
		chaos.Add(1)
		go func() {
			defer chaos.Done()
			for tick := 0; ; tick++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if tick%2 == 0 {
					proxy.delay.Store(int64(3 * time.Millisecond))
				} else {
					proxy.delay.Store(0)
				}
				if tick%5 == 1 {
					cuts += proxy.cut()
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		retried := make(chan bool, 32)
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				executed, err := flipbook.Execute(ctx(t), clients[i%2], id, wallets, func(wallet) ([]flipbook.EventData, error) {
					return []flipbook.EventData{{Name: "Deposited", Data: map[string]any{"amount": i + 1, "command": fmt.Sprintf("c%d", i)}}}, nil
				})
				errs <- err
				retried <- executed.Tries > 1
			}()
		}
		wg.Wait()
		close(stop)
		chaos.Wait()
		close(errs)
		close(retried)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		anyRetried := false
		for r := range retried {
			anyRetried = anyRetried || r
		}
		direct := m.client(t)
		var commands []string
		for _, e := range collect(t, direct.ReadState(ctx(t), flipbook.StateQuery{StateID: id})) {
			var d struct{ Command string }
			_ = e.Decode(&d)
			commands = append(commands, d.Command)
		}
		sort.Strings(commands)
		want := make([]string, 32)
		for i := range want {
			want[i] = fmt.Sprintf("c%d", i)
		}
		sort.Strings(want)
		if fmt.Sprint(commands) != fmt.Sprint(want) {
			t.Fatalf("each command once: %v", commands)
		}
		loaded, err := flipbook.Load(ctx(t), direct, id, wallets)
		if err != nil || loaded.State.Balance != 32*33/2 {
			t.Fatalf("balance %+v %v", loaded, err)
		}
		if !anyRetried || cuts == 0 {
			t.Fatalf("the test did not contend (retried %v) or cut (%d)", anyRetried, cuts)
		}
	})
}

func TestASubscriptionResumesThroughCutConnectionsMissingNothing(t *testing.T) {
	inEveryServer(t, func(t *testing.T, m mode) {
		proxy := startProxy(t, m.url)
		viaProxy := connectTo(proxy.url)(t, flipbook.WithRetryDelays(10*time.Millisecond, 100*time.Millisecond))
		writer := m.client(t)
		prefix := newID("cut")
		live, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		next, stop := iter.Pull2(viaProxy.Subscribe(live, flipbook.SubscriptionQuery{StateIDPrefix: prefix}).Events())
		defer stop()
		var seen []int
		take := func(n int) {
			for range n {
				event, err, ok := next()
				if !ok || err != nil {
					t.Fatalf("the subscription ended: %v", err)
				}
				var d struct{ N int }
				_ = event.Decode(&d)
				seen = append(seen, d.N)
			}
		}
		for round := range 5 {
			events := make([]flipbook.EventData, 10)
			for i := range events {
				events[i] = flipbook.EventData{Name: "Numbered", Data: map[string]int{"n": round*10 + i}}
			}
			if _, err := writer.Append(ctx(t), flipbook.Append{StateID: fmt.Sprintf("%s/%d", prefix, round), Events: events}); err != nil {
				t.Fatal(err)
			}
			take(5)
			if proxy.cut() == 0 {
				t.Fatal("the subscription's connection was open")
			}
			take(5)
		}
		for i, n := range seen {
			if n != i {
				t.Fatalf("missed or repeated: %v", seen)
			}
		}
	})
}

func TestCancellingDuringASlowReadEndsItPromptly(t *testing.T) {
	inEveryServer(t, func(t *testing.T, m mode) {
		proxy := startProxy(t, m.url)
		c := connectTo(proxy.url)(t)
		id := newID("slow")
		events := make([]flipbook.EventData, 500)
		for i := range events {
			events[i] = deposit(1)
		}
		if _, err := m.client(t).Append(ctx(t), flipbook.Append{StateID: id, Events: events}); err != nil {
			t.Fatal(err)
		}
		proxy.delay.Store(int64(300 * time.Millisecond)) // every chunk: a read takes seconds
		for name, run := range map[string]func(context.Context) error{
			"read": func(ctx context.Context) error {
				for _, err := range c.ReadState(ctx, flipbook.StateQuery{StateID: id}) {
					if err != nil {
						return err
					}
				}
				return nil
			},
			"execute": func(ctx context.Context) error {
				_, err := flipbook.Execute(ctx, c, id+"-x", wallets, depositOf(1))
				return err
			},
		} {
			short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			began := time.Now()
			err := run(short)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > 2*time.Second {
				t.Fatalf("%s: %v after %v", name, err, time.Since(began))
			}
		}
		proxy.delay.Store(0)
		if _, err := c.Head(ctx(t), id+"-x"); !errors.Is(err, flipbook.ErrNotFound) {
			t.Fatalf("the cancelled command appended nothing: %v", err)
		}
	})
}

// Breaking out of a read's loop ends the read there: the rest of the stream is not drained (a
// full read through a slow network takes several times as long).
func TestBreakingOutOfAReadEndsIt(t *testing.T) {
	inEveryServer(t, func(t *testing.T, m mode) {
		proxy := startProxy(t, m.url)
		c := connectTo(proxy.url)(t)
		id := newID("long")
		for range 5 {
			events := make([]flipbook.EventData, 1000)
			for i := range events {
				events[i] = flipbook.EventData{Name: "Padded", Payload: make([]byte, 200)}
			}
			if _, err := m.client(t).Append(ctx(t), flipbook.Append{StateID: id, Events: events}); err != nil {
				t.Fatal(err)
			}
		}
		proxy.delay.Store(int64(40 * time.Millisecond))
		read := func(stopAfter int) time.Duration {
			began := time.Now()
			n := 0
			for _, err := range c.ReadState(ctx(t), flipbook.StateQuery{StateID: id}) {
				if err != nil {
					t.Fatal(err)
				}
				if n++; n == stopAfter {
					break
				}
			}
			return time.Since(began)
		}
		full, broken := read(-1), read(1)
		if broken*2 > full {
			t.Fatalf("a read broken after its first event took %v, a full one %v", broken, full)
		}
	})
}

// The core's threads block SIGPIPE: a write to a connection the peer reset fails with EPIPE
// instead of killing the process (the Go runtime leaves a signal raised on a foreign thread to
// the default action; the flaky-network test above met it before they did). The core's threads
// are named "flipbook"; so may be threads the Go runtime starts from them (a name is inherited),
// which do not block it: as many threads of the name block it as the core runs.
func TestTheCoresThreadsBlockSIGPIPE(t *testing.T) {
	c, err := flipbook.InMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tasks, _ := filepath.Glob("/proc/self/task/*")
	blocking := 0
	for _, task := range tasks {
		name, _ := os.ReadFile(filepath.Join(task, "comm"))
		if strings.TrimSpace(string(name)) != "flipbook" {
			continue
		}
		status, err := os.ReadFile(filepath.Join(task, "status"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(status), "\n") {
			if hexMask, ok := strings.CutPrefix(line, "SigBlk:"); ok {
				mask, _ := strconv.ParseUint(strings.TrimSpace(hexMask), 16, 64)
				if mask&(1<<(13-1)) != 0 { // SIGPIPE is 13
					blocking++
				}
			}
		}
	}
	if live := flipbook.LiveThreads(); live == 0 || blocking < live {
		t.Fatalf("%d of the core's %d threads block SIGPIPE", blocking, live)
	}
}
