module github.com/flipbook-es/flipbook/conformance/drivers/go

go 1.23

require github.com/flipbook-es/flipbook/bindings/go v0.1.0
