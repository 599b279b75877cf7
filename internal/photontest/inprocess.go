package photontest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/controller"
)

// Cloud is a controller started in this process through controller.Start:
// real etcd, real HTTPS, the real handlers.
type Cloud struct {
	*controller.Controller
	// Token is the admin token.
	Token string
	// Client is an SDK client logged in as the admin.
	Client  *client.Client
	DataDir string
	cfg     controller.Config
}

// NewController starts a controller in a new data dir. etcdEndpoint "" means
// embedded etcd; otherwise the controller uses that external etcd.
// Options adjust the controller's Config before it starts.
func NewController(t testing.TB, etcdEndpoint string, options ...func(*controller.Config)) *Cloud {
	t.Helper()
	dir := t.TempDir()
	cfg := controller.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: Logger(t)}
	if etcdEndpoint != "" {
		cfg.EtcdEndpoints = []string{etcdEndpoint}
	}
	for _, o := range options {
		o(&cfg)
	}
	c := &Cloud{DataDir: dir, cfg: cfg}
	c.start(t)
	t.Cleanup(func() { c.Close() })
	return c
}

// NewPeer starts another controller on the same etcd as c (an external
// etcd shared by several controllers), in a data dir of its own (its own
// CA and server certificate), with c's Config adjusted by options. It
// shares c's admin token: a controller registers the token of its data dir
// as the bootstrap admin at start, replacing the one registered before, so
// a second controller with a token of its own would revoke c's.
func (c *Cloud) NewPeer(t testing.TB, options ...func(*controller.Config)) *Cloud {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, controller.AdminTokenFile), []byte(c.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := c.cfg
	cfg.DataDir = dir
	cfg.EtcdEndpoints = slices.Clone(c.Etcd)
	for _, o := range options {
		o(&cfg)
	}
	p := &Cloud{DataDir: dir, cfg: cfg}
	p.start(t)
	t.Cleanup(func() { p.Close() })
	return p
}

// ControllerModes starts a controller on embedded etcd, or on an external
// etcd process, for tests that run each way.
var ControllerModes = []struct {
	Name  string
	Start func(testing.TB) *Cloud
}{
	{"embedded", func(t testing.TB) *Cloud { return NewController(t, "") }},
	{"external", func(t testing.TB) *Cloud { return NewController(t, ExternalEtcd(t)) }},
}

func (c *Cloud) start(t testing.TB) {
	t.Helper()
	ctrl, err := controller.Start(context.Background(), c.cfg)
	if err != nil {
		t.Fatalf("start controller: %v", err)
	}
	c.Controller = ctrl
	tok, err := os.ReadFile(filepath.Join(c.DataDir, controller.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c.Token = strings.TrimSpace(string(tok))
	c.Client = c.NewClient(t, c.Token)
}

// NewClient returns an SDK client with the given token ("" for none).
func (c *Cloud) NewClient(t testing.TB, token string) *client.Client {
	t.Helper()
	opts := []client.Option{client.WithCACertFile(c.CACert)}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	cl, err := client.New(c.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Restart stops the controller and starts it again on the same data dir.
func (c *Cloud) Restart(t testing.TB) {
	t.Helper()
	c.Controller.Close()
	c.start(t)
}

// Close stops the controller (idempotent).
func (c *Cloud) Close() {
	if c.Controller != nil {
		c.Controller.Close()
		c.Controller = nil
	}
}
