package hosts

import "context"

// MarkDown does what the liveness watch does on an expiry event of id's
// liveness key: a test delivers one late, as after an etcd outage.
func MarkDown(ctx context.Context, s *Service, id string) error { return s.setAlive(ctx, id, false) }
