//go:build cgo

package flipbook_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

// serverBinary is FLIPBOOK_BIN, else the workspace's debug build.
func serverBinary() string {
	if bin := os.Getenv("FLIPBOOK_BIN"); bin != "" {
		return bin
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		home, _ := os.UserHomeDir()
		target = filepath.Join(home, ".cache", "flipbook", "target")
	}
	return filepath.Join(target, "debug", "flipbook")
}

// server is `flipbook serve` on a free port.
type server struct {
	cmd *exec.Cmd
	url string
}

func startServer(args ...string) (*server, error) {
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--log-format", "json"}, args...)
	cmd := exec.Command(serverBinary(), all...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	serving := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			var record struct{ Message, Addr string }
			if json.Unmarshal(lines.Bytes(), &record) == nil && record.Message == "flipbook serving" && record.Addr != "" {
				serving <- "http://" + record.Addr
			}
		}
	}()
	select {
	case url := <-serving:
		return &server{cmd: cmd, url: url}, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the server did not start within 30 s")
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
}

// mode is where a test's clients run: a server on SQLite, one on PostgreSQL, embedded.
type mode struct {
	name   string
	url    string // "" embedded
	client func(t testing.TB, options ...flipbook.Option) *flipbook.Client
}

var (
	servers     sync.Once
	sqlite      *server
	postgres    *server
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
	for _, s := range []*server{sqlite, postgres} {
		if s != nil {
			s.stop()
		}
	}
	_ = os.RemoveAll(root)
	os.Exit(code)
}

func startServers() {
	servers.Do(func() {
		sqlite, serversErr = startServer("--sqlite-path", filepath.Join(scratchRoot, "server.db"))
		if serversErr != nil {
			return
		}
		url := os.Getenv("FLIPBOOK_TEST_POSTGRES_URL")
		if url == "" {
			serversErr = fmt.Errorf("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)")
			return
		}
		postgres, serversErr = startServer("--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", url)
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
		{name: "server on SQLite", url: sqlite.url, client: connectTo(sqlite.url)},
		{name: "server on PostgreSQL", url: postgres.url, client: connectTo(postgres.url)},
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
