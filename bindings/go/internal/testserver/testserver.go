// Package testserver starts `flipbook serve` for the tests and the benchmarks (not part of a
// release).
package testserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Binary is FLIPBOOK_BIN, else the first of the profiles' builds (debug, release) in the shared
// cargo target dir (CARGO_TARGET_DIR, else ~/.cache/flipbook/target) that exists.
func Binary(profiles ...string) string {
	if bin := os.Getenv("FLIPBOOK_BIN"); bin != "" {
		return bin
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		home, _ := os.UserHomeDir()
		target = filepath.Join(home, ".cache", "flipbook", "target")
	}
	if len(profiles) == 0 {
		profiles = []string{"debug"}
	}
	for _, profile := range profiles {
		if path := filepath.Join(target, profile, "flipbook"); fileExists(path) {
			return path
		}
	}
	return filepath.Join(target, profiles[len(profiles)-1], "flipbook")
}

func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir()
}

// Server is `flipbook serve` on a free port.
type Server struct {
	cmd *exec.Cmd
	URL string
}

// Start starts the binary's server with args and answers once it says where it serves.
func Start(binary string, args ...string) (*Server, error) {
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--log-format", "json"}, args...)
	cmd := exec.Command(binary, all...)
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
		return &Server{cmd: cmd, URL: url}, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the server did not start within 30 s")
	}
}

// Stop stops the server (SIGINT: it shuts down gracefully) and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
}
