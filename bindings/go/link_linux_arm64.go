//go:build cgo

package flipbook

import _ "github.com/flipbook-es/flipbook/bindings/go/internal/native/linux_arm64"
