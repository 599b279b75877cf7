package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// The one mapper: what the store refuses as too large is 413, never 500
// (the store's test checks that etcd's refusal is store.ErrTooLarge).
func TestToAPIError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		code     string
		internal bool
	}{
		{"etcd: request too large", fmt.Errorf("commit: %w: %w", store.ErrTooLarge, rpctypes.ErrRequestTooLarge), api.CodeRequestTooLarge, false},
		{"too many operations", fmt.Errorf("commit: %w: %w", store.ErrTooLarge, rpctypes.ErrTooManyOps), api.CodeRequestTooLarge, false},
		{"body over the limit", &http.MaxBytesError{Limit: MaxBodyBytes}, api.CodeRequestTooLarge, false},
		{"conflict", fmt.Errorf("x: %w", store.ErrConflict), api.CodeUnavailable, true},
		{"deadline", context.DeadlineExceeded, api.CodeUnavailable, true},
		{"api error", api.Errorf(api.CodeQuotaError, "no"), api.CodeQuotaError, false},
		{"other", errors.New("boom"), api.CodeInternalError, true},
	} {
		ae, internal := toAPIError(tc.err)
		if ae.Code != tc.code || internal != tc.internal {
			t.Errorf("%s: %s (internal %v), want %s (internal %v)", tc.name, ae.Code, internal, tc.code, tc.internal)
		}
		if tc.code == api.CodeRequestTooLarge && ae.Status() != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d, want 413", tc.name, ae.Status())
		}
	}
}
