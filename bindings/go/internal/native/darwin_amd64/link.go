//go:build darwin && amd64

// Package darwinamd64 links the core's static library for darwin/amd64, which a release ships
// debug-stripped in this directory (built by the public workflow's go-libraries job).
package darwinamd64

// #cgo LDFLAGS: ${SRCDIR}/libflipbook.a -framework CoreFoundation -framework Security -framework SystemConfiguration -liconv -lSystem -lc -lm
import "C"
