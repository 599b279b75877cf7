package tasks

import (
	"context"
	"time"
)

// QueuedAt exposes queuedAt to the tests.
func (e *Engine) QueuedAt(ctx context.Context, id string) time.Time { return e.queuedAt(ctx, id) }
