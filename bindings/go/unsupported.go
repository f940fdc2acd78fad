//go:build cgo && !((linux || darwin) && (amd64 || arm64))

package flipbook

// A release ships a library for linux and darwin on amd64 and arm64; anywhere else this line
// fails to compile so that the error says why.
var _ = flipbook_has_no_library_for_this_platform__see_the_README
