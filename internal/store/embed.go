package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is a single-member etcd running inside this process.
type Embedded struct {
	etcd *embed.Etcd
	// Endpoint is the client URL, e.g. "http://127.0.0.1:41233".
	Endpoint string
}

// EmbeddedMaxTxnOps is the embedded etcd's bound on the operations of one
// transaction (etcd's default is 128), room for group commits: a batch of
// 128 creates (about 9 writes each) fits. At 1,024 a fifth of them did
// not, and ran again in the next batch, their prefetch too.
const EmbeddedMaxTxnOps = 2048

// embeddedSnapshotCount bounds the raft entries the embedded member keeps
// in memory (see StartEmbedded).
const embeddedSnapshotCount = 1000

// StartEmbedded starts a single-member etcd with its data in dir, listening on
// loopback ports chosen by the kernel. It returns when the member is ready.
func StartEmbedded(ctx context.Context, dir string, log *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "photon"
	cfg.Dir = filepath.Join(dir, "member-data")
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{local}
	cfg.AdvertiseClientUrls = []url.URL{local}
	cfg.ListenPeerUrls = []url.URL{local}
	cfg.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:2380"}}
	cfg.InitialCluster = "photon=http://127.0.0.1:2380"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Keep history bounded: compact hourly, keep the backend small.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.QuotaBackendBytes = 8 << 30
	cfg.MaxTxnOps = EmbeddedMaxTxnOps
	// etcd keeps the raft log's last SnapshotCount entries, plus
	// SnapshotCatchUpEntries for slow followers, in memory. Group commits
	// make entries large (a batch of creates is hundreds of KB): with
	// etcd's defaults (10,000 and 5,000) they held gigabytes. A
	// single member has no follower to catch up, and its snapshots are
	// cheap (the backend is already on disk).
	cfg.SnapshotCount = embeddedSnapshotCount
	cfg.SnapshotCatchUpEntries = embeddedSnapshotCount
	// The logger is a no-op, but etcd formats every request slower than
	// these (the text of a whole group commit) before logging it: under
	// load that was 2% of the process's CPU for nothing.
	cfg.WarningUnaryRequestDuration = time.Hour
	cfg.WarningApplyDuration = time.Hour
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	ep := "http://" + e.Clients[0].Addr().String()
	log.Info("embedded etcd ready", "dir", dir, "endpoint", ep)
	return &Embedded{etcd: e, Endpoint: ep}, nil
}

// Client returns a client that calls the member in this process directly
// (etcd's v3client: no socket, no gRPC framing or protobuf on the way).
// Under load the loopback gRPC path was a fifth of the controller's CPU.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Close stops the member.
func (e *Embedded) Close() {
	e.etcd.Close()
}
