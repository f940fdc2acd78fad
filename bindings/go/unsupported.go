//go:build cgo && !(linux && amd64)

package flipbook

// The platforms a release ships a library for are linux/amd64 (here) and those the public
// workflow builds; anywhere else this line fails to compile so that the error says why.
var _ = flipbook_has_no_library_for_this_platform__see_the_README
