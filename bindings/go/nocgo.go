//go:build !cgo

package flipbook

// Flipbook runs its Rust core in the process, through cgo: this line fails to compile with
// CGO_ENABLED=0 so that the error says what to do.
var _ = flipbook_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
