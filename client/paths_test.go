package client

import "testing"

func TestObjectPaths(t *testing.T) {
	for _, tc := range []struct{ kind, id, iam, quota string }{
		{"tenant", "t-1", "/v1/tenants/t-1/iam", "/v1/tenants/t-1/quota"},
		{"project", "p/1", "/v1/projects/p%2F1/iam", "/v1/projects/p%2F1/quota"},
		{"vm", "vm-1", "/v1/vms/vm-1/iam", ""},
		{"disk", "d-1", "/v1/disks/d-1/iam", ""},
		{"image", "i-1", "/v1/images/i-1/iam", ""},
		{"system", "", "/v1/system/iam", ""},
	} {
		if got := IAMPath(tc.kind, tc.id); got != tc.iam {
			t.Errorf("IAMPath(%q, %q) = %q, want %q", tc.kind, tc.id, got, tc.iam)
		}
		if tc.quota == "" {
			continue // only tenants and projects have a quota
		}
		if got := QuotaPath(tc.kind, tc.id); got != tc.quota {
			t.Errorf("QuotaPath(%q, %q) = %q, want %q", tc.kind, tc.id, got, tc.quota)
		}
	}
}
