package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Kinds of errors a request can meet. fabricd's parts return errors that wrap one of them
// (see Errorf) where the caller has to decide something (a conflict is a 409, not a 500);
// StatusCode maps them to HTTP statuses, and the client's StatusError unwraps to them, so
// both ends can test with errors.Is.
var (
	// ErrInvalid is a malformed or invalid request: 400.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound is an unknown object (container, attachment, published port): 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a request that conflicts with the current state (an address or host
	// port in use, a container attached otherwise, a port name owned by someone else): 409.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is a request fabricd cannot serve yet (still starting): 503.
	ErrUnavailable = errors.New("unavailable")
)

// kindError is an error of a kind whose message is its cause's alone.
type kindError struct {
	kind, err error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Errorf formats an error of the given kind (ErrInvalid, ErrNotFound, ErrConflict,
// ErrUnavailable); its message is the formatted text, without the kind's name. %w works as
// in fmt.Errorf.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// WithKind marks err as an error of kind, keeping its message; nil stays nil.
func WithKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: kind, err: err}
}

// statusOf pairs the kinds with their HTTP statuses.
var statusOf = []struct {
	kind error
	code int
}{
	{ErrInvalid, http.StatusBadRequest},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrUnavailable, http.StatusServiceUnavailable},
}

// StatusCode is the HTTP status an error answers with: its kind's, else 500 (a failure
// inside fabricd). It is the only mapping of errors to statuses.
func StatusCode(err error) int {
	for _, s := range statusOf {
		if errors.Is(err, s.kind) {
			return s.code
		}
	}
	return http.StatusInternalServerError
}

// Unwrap is the kind of error the status stands for (nil for a 500 or an unknown status).
func (e *StatusError) Unwrap() error {
	for _, s := range statusOf {
		if s.code == e.Code {
			return s.kind
		}
	}
	return nil
}
