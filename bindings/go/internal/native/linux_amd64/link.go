//go:build linux && amd64

// Package linuxamd64 links the core's static library for linux/amd64: a release ships it
// debug-stripped in this directory; a checkout builds it with scripts/lib.sh.
package linuxamd64

// #cgo LDFLAGS: ${SRCDIR}/libflipbook.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
