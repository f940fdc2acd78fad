//go:build cgo

package flipbook

// LiveThreads lets the tests (package flipbook_test) count the core's threads.
var LiveThreads = liveThreads
