package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of the Photon Controller API. Keep these exact: old clients match them.
const (
	CodeQuotaError         = "QuotaError"
	CodeNameTaken          = "NameTaken"
	CodeInvalidEntity      = "InvalidEntity"
	CodeInvalidJSON        = "InvalidJson"
	CodeInvalidQuery       = "InvalidQueryParams"
	CodeNotFound           = "NotFound"
	CodeTenantNotFound     = "TenantNotFound"
	CodeProjectNotFound    = "ProjectNotFound"
	CodeTaskNotFound       = "TaskNotFound"
	CodeFlavorNotFound     = "FlavorNotFound"
	CodeUserNotFound       = "UserNotFound"
	CodeFlavorInUse        = "FlavorInUse"
	CodeInvalidFlavorState = "InvalidFlavorState"
	CodeInvalidState       = "InvalidState"
	CodeConcurrentTask     = "ConcurrentTask"
	CodeContainerNotEmpty  = "ContainerNotEmpty"
	CodeMissingAuthToken   = "MissingAuthToken"
	CodeInvalidAuthToken   = "InvalidAuthToken"
	CodeExpiredAuthToken   = "ExpiredAuthToken"
	CodeAccessForbidden    = "AccessForbidden"
	CodeTooManyRequests    = "TooManyRequests"
	CodeMethodNotAllowed   = "MethodNotAllowed"
	CodeRequestTooLarge    = "RequestTooLarge"
	CodeUnavailable        = "ServiceUnavailable"
	CodeInternalError      = "InternalError"
	// Virtual networks (ours where Photon Controller 1.2 is silent).
	CodeRouterNotFound = "RouterNotFound"
	CodeSubnetNotFound = "SubnetNotFound"
	// CodeIPExhausted: a subnet has no free address for a new port
	// (data.subnet names it).
	CodeIPExhausted = "IpExhausted"
)

// Error is the body of every failed API call: {"code", "message", "data"}.
// The SDK turns error bodies back into *Error, so errors.Is(err, &Error{Code: X})
// works on both sides of the wire.
type Error struct {
	// Code is a stable machine-readable code, e.g. "QuotaError".
	Code string `json:"code"`
	// Message is for people, e.g. "Not enough quota: vm.cpu needs 4, 2 free".
	Message string `json:"message"`
	// Data carries details, e.g. {"field": "name"}.
	Data map[string]string `json:"data,omitempty"`
	// HTTPStatus is the status the error was (or will be) sent with.
	HTTPStatus int `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, api.ErrNotFound) style checks work.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// Status is the HTTP status for the error's code.
func (e *Error) Status() int {
	if e.HTTPStatus != 0 {
		return e.HTTPStatus
	}
	return StatusForCode(e.Code)
}

// StatusForCode maps an error code to its HTTP status. This is the one place that decides.
func StatusForCode(code string) int {
	switch code {
	case CodeNotFound, CodeTenantNotFound, CodeProjectNotFound, CodeTaskNotFound, CodeFlavorNotFound,
		"VmNotFound", "ImageNotFound", "DiskNotFound", "HostNotFound", "DatastoreNotFound", CodeUserNotFound,
		"ConsoleSessionNotFound", CodeRouterNotFound, CodeSubnetNotFound:
		return http.StatusNotFound
	case CodeMissingAuthToken, CodeInvalidAuthToken, CodeExpiredAuthToken:
		return http.StatusUnauthorized
	case CodeAccessForbidden:
		return http.StatusForbidden
	case CodeTooManyRequests:
		return http.StatusTooManyRequests
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeInternalError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError builds an InvalidEntity error naming the offending field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidEntity, Message: field + ": " + fmt.Sprintf(format, args...),
		Data: map[string]string{"field": field}}
}

// Sentinels for errors.Is.
var (
	ErrNotFound       = &Error{Code: CodeNotFound}
	ErrQuota          = &Error{Code: CodeQuotaError}
	ErrNameTaken      = &Error{Code: CodeNameTaken}
	ErrConcurrentTask = &Error{Code: CodeConcurrentTask}
)
