// Package apiserver serves fabricd's local API (package api) on a unix socket: it decodes
// requests strictly, calls the reconcile loop (status), the endpoints (attach, detach,
// publish, list) and the networks (create, list, inspect, remove), logs the caller of every
// change (SO_PEERCRED), and answers errors with the status of their kind (api.StatusCode),
// the one place errors become HTTP statuses.
package apiserver
