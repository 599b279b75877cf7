package store

import "go.uber.org/zap"

// nopLogger silences the etcd client's zap logs; Photon logs through slog.
func nopLogger() *zap.Logger { return zap.NewNop() }
