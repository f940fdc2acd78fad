package main

import "github.com/flipbook-es/flipbook/bindings/go/internal/testserver"

type server struct{ *testserver.Server }

func startServer(binary string, args ...string) (server, error) {
	s, err := testserver.Start(binary, args...)
	return server{s}, err
}

func (s server) stop() { s.Stop() }

// serverBinary prefers a release build: the figures come from one.
func serverBinary() string { return testserver.Binary("release", "debug") }
