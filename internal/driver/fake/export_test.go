package fake

import (
	"time"

	"github.com/photon-cloud/photon/internal/driver"
)

// ListFresh observes every VM now, as List does when it has no answer kept.
func (d *Driver) ListFresh() []driver.VMStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, _ := d.listLocked(time.Now())
	return l
}
