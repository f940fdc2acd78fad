//go:build cgo

package flipbook_test

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyProxy is a TCP proxy in front of a server, as a flaky network is: it can delay every
// chunk each way and cut every open connection. Clients connect to url.
type flakyProxy struct {
	listener net.Listener
	url      string
	delay    atomic.Int64 // nanoseconds each chunk waits
	mu       sync.Mutex
	open     map[net.Conn]struct{}
}

func startProxy(t *testing.T, serverURL string) *flakyProxy {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{listener: listener, url: "http://" + listener.Addr().String(), open: map[net.Conn]struct{}{}}
	target := strings.TrimPrefix(serverURL, "http://")
	go func() {
		for {
			in, err := listener.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.track(in, out)
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		_ = listener.Close()
		p.cut()
	})
	return p
}

func (p *flakyProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.open[c] = struct{}{}
	}
}

// pipe copies one way, each chunk after the delay, in order.
func (p *flakyProxy) pipe(from, to net.Conn) {
	defer func() { _ = from.Close(); _ = to.Close() }()
	buffer := make([]byte, 32*1024)
	for {
		n, err := from.Read(buffer)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := to.Write(buffer[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a cut: closing both ends tells the other side
		}
	}
}

// cut closes every open connection and answers how many there were.
func (p *flakyProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.open)
	for c := range p.open {
		if tcp, ok := c.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // a reset, as a network that drops the connection answers
		}
		_ = c.Close()
	}
	clear(p.open)
	return n
}
