//go:build cgo

package flipbook_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
	"github.com/flipbook-es/flipbook/bindings/go/internal/testserver"
)

// mode is where a test's clients run: a server on SQLite, one on PostgreSQL, embedded.
type mode struct {
	name   string
	url    string // "" embedded
	client func(t testing.TB, options ...flipbook.Option) *flipbook.Client
}

var (
	servers     sync.Once
	sqlite      *testserver.Server
	postgres    *testserver.Server
	serversErr  error
	scratchRoot string
)

func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "flipbook-go-")
	if err != nil {
		panic(err)
	}
	scratchRoot = root
	code := m.Run()
	for _, s := range []*testserver.Server{sqlite, postgres} {
		if s != nil {
			s.Stop()
		}
	}
	_ = os.RemoveAll(root)
	os.Exit(code)
}

func startServers() {
	servers.Do(func() {
		sqlite, serversErr = testserver.Start(testserver.Binary(), "--sqlite-path", filepath.Join(scratchRoot, "server.db"))
		if serversErr != nil {
			return
		}
		url := os.Getenv("FLIPBOOK_TEST_POSTGRES_URL")
		if url == "" {
			serversErr = fmt.Errorf("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)")
			return
		}
		postgres, serversErr = testserver.Start(testserver.Binary(), "--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", url)
	})
}

func connectTo(url string) func(testing.TB, ...flipbook.Option) *flipbook.Client {
	return func(t testing.TB, options ...flipbook.Option) *flipbook.Client {
		t.Helper()
		c, err := flipbook.Connect(context.Background(), url, options...)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
}

func modes(t *testing.T) []mode {
	t.Helper()
	startServers()
	if serversErr != nil {
		t.Fatal(serversErr)
	}
	path := filepath.Join(scratchRoot, fmt.Sprintf("embedded-%s.db", newID("")))
	return []mode{
		{name: "server on SQLite", url: sqlite.URL, client: connectTo(sqlite.URL)},
		{name: "server on PostgreSQL", url: postgres.URL, client: connectTo(postgres.URL)},
		{name: "embedded", client: func(t testing.TB, options ...flipbook.Option) *flipbook.Client {
			t.Helper()
			c, err := flipbook.OpenEmbedded(path, options...)
			if err != nil {
				t.Fatalf("open %s: %v", path, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	}
}

// inEveryMode runs the test in every mode, as subtests.
func inEveryMode(t *testing.T, test func(t *testing.T, m mode)) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// newID is a state id no other test uses.
func newID(what string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return what + "-" + hex.EncodeToString(b[:])
}

func collect(t testing.TB, events func(func(flipbook.Event, error) bool)) []flipbook.Event {
	t.Helper()
	var out []flipbook.Event
	for event, err := range events {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, event)
	}
	return out
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}
