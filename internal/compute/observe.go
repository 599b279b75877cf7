package compute

import (
	"context"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/store"
)

// Observe records what a host reports of its VMs and wakes the tasks that
// wait for it. VMs the host should run but does not report are marked not
// present; the host's report is the truth about the host.
func (s *Service) Observe(ctx context.Context, hostID string, observed []api.VMObserved) error {
	byID := make(map[string]api.VMObserved, len(observed))
	for _, o := range observed {
		byID[o.ID] = o
	}
	desired, _, err := store.ListRev[api.VMDesired](ctx, s.st, hosts.DesiredPrefix(hostID))
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(desired)+len(observed))
	seen := map[string]bool{}
	for _, d := range desired {
		ids, seen[d.ID] = append(ids, d.ID), true
	}
	for _, o := range observed {
		if !seen[o.ID] {
			ids = append(ids, o.ID) // being deleted: its record says whether it is gone
		}
	}
	for _, id := range ids {
		o, present := byID[id]
		var kick string
		_, err := s.st.Update(ctx, func(tx *store.Txn) error {
			kick = ""
			var v vmRecord
			if ok, err := tx.Get(ctx, vmKey(id), &v); err != nil || !ok || v.HostID != hostID {
				return err
			}
			changed := v.Present != present
			v.Present = present
			if present {
				if o.Generation > v.Observed {
					v.Observed, changed = o.Generation, true
				}
				if o.Error != v.HostErr {
					v.HostErr, changed = o.Error, true
				}
				// The observed power state is the VM's state once the VM
				// exists (CREATING until its create step ends). A placed VM
				// that crashed (ERROR) and was booted again comes back; one
				// whose create failed holds no place and stays ERROR.
				if v.State != api.VMCreating && (v.State != api.VMError || v.Reserved) && o.State != "" && o.State != v.State && o.Generation >= v.Generation {
					v.State, changed = o.State, true
				}
			}
			if !changed {
				return nil
			}
			holder, err := lockedBy(ctx, tx, id)
			if err != nil {
				return err
			}
			kick = holder
			return tx.Put(vmKey(id), &v)
		})
		if err != nil {
			return err
		}
		if kick != "" {
			s.tasks.KickTask(kick)
		}
	}
	return nil
}
