package controller

import (
	"errors"
	"fmt"
	"net/http"
)

// RequestError is an error caused by the request rather than by fabricd; Code is the HTTP
// status the API answers with.
type RequestError struct {
	Code int
	Err  error
}

// Error returns the message sent to the client.
func (e *RequestError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RequestError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &RequestError{Code: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &RequestError{Code: http.StatusNotFound, Err: fmt.Errorf(format, args...)}
}

func unavailable(format string, args ...any) error {
	return &RequestError{Code: http.StatusServiceUnavailable, Err: fmt.Errorf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &RequestError{Code: http.StatusConflict, Err: fmt.Errorf(format, args...)}
}

// httpCode is the status an error maps to: the RequestError's, else 500.
func httpCode(err error) int {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Code
	}
	return http.StatusInternalServerError
}
