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
	// Endpoint is the client URL, a unix socket only the process's user
	// can open, e.g. "unix:///var/lib/photon/etcd/etcd.sock" (clientv3
	// and etcdctl take it as an endpoint).
	Endpoint string
	// tmpDir is the socket's directory when dir's path was too long for
	// a socket address; removed by Close.
	tmpDir string
}

// SocketName is the embedded etcd's client socket in its data dir.
const SocketName = "etcd.sock"

// EmbeddedMaxTxnOps is the embedded etcd's bound on the operations of one
// transaction (etcd's default is 128), room for group commits: a batch of
// 128 creates (about 9 writes each) fits. At 1,024 a fifth of them did
// not, and ran again in the next batch, their prefetch too.
const EmbeddedMaxTxnOps = 2048

// embeddedSnapshotCount bounds the raft entries the embedded member keeps
// in memory (see StartEmbedded).
const embeddedSnapshotCount = 1000

// StartEmbedded starts a single-member etcd with its data in dir. It
// returns when the member is ready.
//
// Nothing listens on TCP: etcd has no authentication of its own here, and
// any local user who reached it would read the token-signing key and
// become system-admin. The client URL is a unix socket in dir (mode 0600,
// dir 0700), which only the process's user (and root) can open; the
// controller itself calls the member in process (Client). A single
// member has no peers, so it has no peer listener (its advertised peer
// URL is a name, nothing listens there).
func StartEmbedded(ctx context.Context, dir string, log *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	em := &Embedded{}
	sock := filepath.Join(abs, SocketName)
	if len(sock) >= 100 { // sun_path holds 108 bytes
		if em.tmpDir, err = os.MkdirTemp("", "photon-etcd-"); err != nil { // 0700
			return nil, fmt.Errorf("etcd socket dir: %w", err)
		}
		sock = filepath.Join(em.tmpDir, SocketName)
	}
	cfg := embed.NewConfig()
	cfg.Name = "photon"
	cfg.Dir = filepath.Join(dir, "member-data")
	local := url.URL{Scheme: "unix", Path: sock}
	cfg.ListenClientUrls = []url.URL{local}
	cfg.AdvertiseClientUrls = []url.URL{{Scheme: "unix", Host: "localhost:0", Path: sock}}
	cfg.ListenPeerUrls = nil
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
		em.removeTmp()
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	em.etcd = e
	// The socket is made with the process's umask; its directory (0700)
	// already keeps other users out, and the socket itself is 0600.
	if err := os.Chmod(sock, 0o600); err != nil {
		em.Close()
		return nil, fmt.Errorf("embedded etcd socket: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		em.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 60s")
	case <-ctx.Done():
		em.Close()
		return nil, ctx.Err()
	}
	em.Endpoint = "unix://" + sock
	log.Info("embedded etcd ready", "dir", dir, "endpoint", em.Endpoint)
	return em, nil
}

// Client returns a client that calls the member in this process directly
// (etcd's v3client: no socket, no gRPC framing or protobuf on the way).
// Under load the loopback gRPC path was a fifth of the controller's CPU.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Close stops the member.
func (e *Embedded) Close() {
	e.etcd.Close()
	e.removeTmp()
}

func (e *Embedded) removeTmp() {
	if e.tmpDir != "" {
		_ = os.RemoveAll(e.tmpDir)
	}
}
