//go:build linux && arm64

// Package linuxarm64 links the core's static library for linux/arm64, which a release ships
// debug-stripped in this directory (built by the public workflow's go-libraries job).
package linuxarm64

// #cgo LDFLAGS: ${SRCDIR}/libflipbook.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
import "C"
