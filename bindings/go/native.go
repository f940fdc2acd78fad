package flipbook

/*
#include <stdlib.h>
#include "callbacks.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// A call in flight: what converts its borrowed result into Go values (on the core's thread,
// before the callback returns), and where the answer goes.
type waiter struct {
	convert func(value unsafe.Pointer, count uint64) any
	done    chan answer
}

type answer struct {
	value any
	err   error
}

// flipbookComplete is every callback's Go side: it runs exactly once per call, on a thread of
// the client's runtime. A panic while converting becomes the call's error, never an unwind
// into Rust.
//
//export flipbookComplete
func flipbookComplete(userData unsafe.Pointer, value unsafe.Pointer, count C.uint64_t, failure *C.FbError) {
	handle := *(*cgo.Handle)(userData)
	C.free(userData)
	w := handle.Value().(*waiter)
	handle.Delete()
	w.done <- w.answer(value, uint64(count), failure)
}

func (w *waiter) answer(value unsafe.Pointer, count uint64, failure *C.FbError) (a answer) {
	if failure != nil {
		return answer{err: takeError(failure)}
	}
	if w.convert == nil {
		return answer{}
	}
	defer func() {
		if p := recover(); p != nil {
			a = answer{err: &Error{Code: CodeInternal, Message: fmt.Sprintf("flipbook: converting an answer panicked: %v", p)}}
		}
	}()
	return answer{value: w.convert(value, count)}
}

// await starts a native call and waits for its answer or for ctx to end, whichever is first.
// When ctx ends first the call is cancelled and its answer still awaited (the callback runs
// exactly once): a call that completed meanwhile keeps its answer, one that was cancelled
// answers ctx's error.
// A start that answers an error made no call.
func await[T any](ctx context.Context, convert func(value unsafe.Pointer, count uint64) T, start func(userData unsafe.Pointer) (*C.FbCall, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	w := &waiter{done: make(chan answer, 1)}
	if convert != nil {
		w.convert = func(value unsafe.Pointer, count uint64) any { return convert(value, count) }
	}
	handle := cgo.NewHandle(w)
	userData := C.malloc(C.size_t(unsafe.Sizeof(handle)))
	*(*cgo.Handle)(userData) = handle
	call, err := start(userData)
	if err != nil {
		handle.Delete()
		C.free(userData)
		return zero, err
	}
	defer C.fb_call_free(call)
	var a answer
	select {
	case a = <-w.done:
	case <-ctx.Done():
		C.fb_call_cancel(call)
		a = <-w.done
	}
	if a.err != nil {
		if fe, ok := a.err.(*Error); ok && fe.Code == codeCancelled {
			if err := ctx.Err(); err != nil {
				return zero, err
			}
			return zero, &Error{Code: CodeClosed, Message: "the call ended with its client"}
		}
		return zero, a.err
	}
	if a.value == nil {
		return zero, nil
	}
	return a.value.(T), nil
}

// started is a start that cannot fail before the call.
func started(start func(userData unsafe.Pointer) *C.FbCall) func(unsafe.Pointer) (*C.FbCall, error) {
	return func(userData unsafe.Pointer) (*C.FbCall, error) { return start(userData), nil }
}

// inputs pins the Go memory a native call borrows (for the duration of the call: the core
// copies what it keeps before it returns) and makes the views of it.
type inputs struct {
	pinner runtime.Pinner
}

func (in *inputs) release() { in.pinner.Unpin() }

func (in *inputs) bytes(b []byte) C.FbView {
	if len(b) == 0 {
		return C.FbView{}
	}
	in.pinner.Pin(&b[0])
	return C.FbView{data: (*C.uint8_t)(unsafe.Pointer(&b[0])), len: C.size_t(len(b))}
}

func (in *inputs) text(s string) C.FbView {
	if len(s) == 0 {
		return C.FbView{}
	}
	data := unsafe.StringData(s)
	in.pinner.Pin(data)
	return C.FbView{data: (*C.uint8_t)(unsafe.Pointer(data)), len: C.size_t(len(s))}
}

// array pins a slice of C structs made in Go and answers its first element (nil when empty).
func array[T any](in *inputs, items []T) *T {
	if len(items) == 0 {
		return nil
	}
	in.pinner.Pin(&items[0])
	return &items[0]
}

func (in *inputs) texts(list []string) (*C.FbView, C.size_t) {
	views := make([]C.FbView, len(list))
	for i, s := range list {
		views[i] = in.text(s)
	}
	return array(in, views), C.size_t(len(views))
}

// view is bytes the core lends for the duration of a callback.
func view(v C.FbView) []byte {
	if v.len == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(v.data)), int(v.len))
}

func goString(v C.FbView) string { return string(view(v)) }

func goBytes(v C.FbView) []byte {
	if v.len == 0 {
		return nil
	}
	return append([]byte(nil), view(v)...)
}

func cBool(b bool) C.bool { return C.bool(b) }
