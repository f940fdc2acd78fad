package flipbook

/*
#include "flipbook.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Code is the kind of a failure, the same in every binding (docs/spec.md §7).
type Code int

// The codes, with the values of flipbook.h.
const (
	CodeInvalidArgument   Code = C.FB_ERROR_INVALID_ARGUMENT
	CodeNotFound          Code = C.FB_ERROR_NOT_FOUND
	CodeVersionConflict   Code = C.FB_ERROR_VERSION_CONFLICT
	CodeDuplicateEvent    Code = C.FB_ERROR_DUPLICATE_EVENT
	CodeStateKindMismatch Code = C.FB_ERROR_STATE_KIND_MISMATCH
	CodeTooLarge          Code = C.FB_ERROR_TOO_LARGE
	CodeStorageFull       Code = C.FB_ERROR_STORAGE_FULL
	CodeReadOnly          Code = C.FB_ERROR_READ_ONLY
	CodeUnauthenticated   Code = C.FB_ERROR_UNAUTHENTICATED
	CodePermissionDenied  Code = C.FB_ERROR_PERMISSION_DENIED
	CodeUnavailable       Code = C.FB_ERROR_UNAVAILABLE
	CodeClosed            Code = C.FB_ERROR_CLOSED
	CodeFellBehind        Code = C.FB_ERROR_FELL_BEHIND
	CodeRejected          Code = C.FB_ERROR_REJECTED
	CodeInternal          Code = C.FB_ERROR_INTERNAL

	// The C ABI's own: a call ended by fb_call_cancel. Never returned: a cancelled context
	// answers the context's error.
	codeCancelled Code = C.FB_ERROR_CANCELLED
)

// The sentinels, one per code, for errors.Is: errors.Is(err, flipbook.ErrVersionConflict).
var (
	ErrInvalidArgument   = errors.New("flipbook: invalid argument")
	ErrNotFound          = errors.New("flipbook: not found")
	ErrVersionConflict   = errors.New("flipbook: version conflict")
	ErrDuplicateEvent    = errors.New("flipbook: duplicate event")
	ErrStateKindMismatch = errors.New("flipbook: state kind mismatch")
	ErrTooLarge          = errors.New("flipbook: too large")
	ErrStorageFull       = errors.New("flipbook: storage full")
	ErrReadOnly          = errors.New("flipbook: read-only")
	ErrUnauthenticated   = errors.New("flipbook: unauthenticated")
	ErrPermissionDenied  = errors.New("flipbook: permission denied")
	ErrUnavailable       = errors.New("flipbook: unavailable")
	ErrClosed            = errors.New("flipbook: closed")
	ErrFellBehind        = errors.New("flipbook: fell behind")
	ErrRejected          = errors.New("flipbook: rejected")
	ErrInternal          = errors.New("flipbook: internal error")
)

// Each code's name, as every binding spells it, and its sentinel.
var codes = map[Code]struct {
	name     string
	sentinel error
}{
	CodeInvalidArgument:   {"INVALID_ARGUMENT", ErrInvalidArgument},
	CodeNotFound:          {"NOT_FOUND", ErrNotFound},
	CodeVersionConflict:   {"VERSION_CONFLICT", ErrVersionConflict},
	CodeDuplicateEvent:    {"DUPLICATE_EVENT", ErrDuplicateEvent},
	CodeStateKindMismatch: {"STATE_KIND_MISMATCH", ErrStateKindMismatch},
	CodeTooLarge:          {"TOO_LARGE", ErrTooLarge},
	CodeStorageFull:       {"STORAGE_FULL", ErrStorageFull},
	CodeReadOnly:          {"READ_ONLY", ErrReadOnly},
	CodeUnauthenticated:   {"UNAUTHENTICATED", ErrUnauthenticated},
	CodePermissionDenied:  {"PERMISSION_DENIED", ErrPermissionDenied},
	CodeUnavailable:       {"UNAVAILABLE", ErrUnavailable},
	CodeClosed:            {"CLOSED", ErrClosed},
	CodeFellBehind:        {"FELL_BEHIND", ErrFellBehind},
	CodeRejected:          {"REJECTED", ErrRejected},
	CodeInternal:          {"INTERNAL", ErrInternal},
}

// String is the code's name ("VERSION_CONFLICT").
func (c Code) String() string {
	if info, ok := codes[c]; ok {
		return info.name
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Error is a failure Flipbook reports: errors.As(err, &e) to read its code and what it names.
// errors.Is(err, ErrVersionConflict) (the sentinel of its code) holds as well.
type Error struct {
	Code    Code
	Message string
	// The argument at fault (INVALID_ARGUMENT, TOO_LARGE), as "parts[1].events[0].name".
	Field string
	// The state a conflict, a duplicate or a kind mismatch is about.
	StateID string
	// The state's version now (VERSION_CONFLICT, with HasActualVersion).
	ActualVersion    uint64
	HasActualVersion bool
	// Whether the same call may succeed later (the core has retried what it could already).
	Retryable bool
}

// Error is the message, "flipbook: " first.
func (e *Error) Error() string { return "flipbook: " + e.Message }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool { return target != nil && codes[e.Code].sentinel == target }

func invalid(field, rule string) *Error {
	return &Error{Code: CodeInvalidArgument, Message: "invalid argument: " + field + ": " + rule, Field: field}
}

// takeError converts an error the core handed over, and frees it.
func takeError(failure *C.FbError) *Error {
	defer C.fb_error_free(failure)
	e := &Error{
		Code:      Code(C.fb_error_code(failure)),
		Message:   C.GoString(C.fb_error_message(failure)),
		Retryable: bool(C.fb_error_retryable(failure)),
	}
	if field := C.fb_error_field(failure); field != nil {
		e.Field = C.GoString(field)
	}
	if state := C.fb_error_state_id(failure); state != nil {
		e.StateID = C.GoString(state)
	}
	var actual C.uint64_t
	if C.fb_error_actual_version(failure, &actual) {
		e.ActualVersion, e.HasActualVersion = uint64(actual), true
	}
	return e
}
