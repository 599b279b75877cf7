package store_test

import (
	"testing"

	"github.com/photon-cloud/photon/internal/store"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{nil, "/photon/v1/"},
		{[]string{"vms"}, "/photon/v1/vms"},
		{[]string{"vms", "a-b"}, "/photon/v1/vms/a-b"},
		{[]string{"desired", "h1", "v1"}, "/photon/v1/desired/h1/v1"},
		{[]string{"x", ""}, "/photon/v1/x/"},
	} {
		if got := store.Key(tc.parts...); got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.parts, got, tc.want)
		}
	}
	if got := store.Prefix("vms"); got != "/photon/v1/vms/" {
		t.Errorf("Prefix(vms) = %q", got)
	}
	parts := []string{"desired", "host-1", "vm-1"}
	if n := testing.AllocsPerRun(100, func() { _ = store.Key(parts...) }); n != 1 {
		t.Errorf("Key allocates %v times, want 1", n)
	}
}
