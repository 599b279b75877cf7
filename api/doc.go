// Package api holds Photon's wire types: every request and response body of
// the /v1 REST API, the error codes, and the small parsers (quota limits,
// names) that server, SDK and CLI share. It imports only the standard library.
package api
