//go:build cgo

package flipbook

import _ "github.com/flipbook-es/flipbook/bindings/go/internal/native/darwin_arm64"
