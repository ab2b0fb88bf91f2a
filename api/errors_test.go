package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestStatusCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{Errorf(ErrInvalid, "bad %s", "x"), http.StatusBadRequest},
		{Errorf(ErrNotFound, "gone"), http.StatusNotFound},
		{fmt.Errorf("attach: %w", Errorf(ErrConflict, "taken")), http.StatusConflict},
		{WithKind(ErrUnavailable, io.EOF), http.StatusServiceUnavailable},
		{io.EOF, http.StatusInternalServerError},
		{nil, http.StatusInternalServerError},
	} {
		if got := StatusCode(tc.err); got != tc.code {
			t.Errorf("StatusCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
	e := Errorf(ErrConflict, "port %d: %w", 80, io.EOF)
	if e.Error() != "port 80: EOF" || !errors.Is(e, io.EOF) || !errors.Is(e, ErrConflict) || errors.Is(e, ErrNotFound) {
		t.Errorf("Errorf: %q", e)
	}
	if WithKind(ErrConflict, nil) != nil {
		t.Error("WithKind(nil) is not nil")
	}
	// The client's error answers unwrap to the same kinds.
	if se := (&StatusError{Code: 409, Message: "taken"}); !errors.Is(se, ErrConflict) || errors.Is(&StatusError{Code: 500}, ErrConflict) {
		t.Error("StatusError does not unwrap to its kind")
	}
}
