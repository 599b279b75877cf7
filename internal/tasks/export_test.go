package tasks

import (
	"context"
	"github.com/photon-cloud/photon/internal/store"
	"time"
)

// QueuedAt exposes queuedAt to the tests.
func (e *Engine) QueuedAt(ctx context.Context, id string) time.Time { return e.queuedAt(ctx, id) }

// TaskHub is the hub Wait waits on.
func (e *Engine) TaskHub() *store.Hub { return e.hub }
