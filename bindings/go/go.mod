module github.com/flipbook-es/flipbook/bindings/go

go 1.23
