package controller_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/photontest"
)

func tlsClient(t *testing.T, c *photontest.Cloud) (addr string, conf *tls.Config) {
	t.Helper()
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// TLS 1.2 is offered with ECDHE and AEAD suites only: a client offering
// only CBC-SHA1 suites is refused; TLS 1.3 and GCM go through.
func TestTLSCipherSuites(t *testing.T) {
	c := photontest.NewController(t, "")
	addr, base := tlsClient(t, c)
	for _, tc := range []struct {
		name   string
		suites []uint16
		max    uint16
		ok     bool
	}{
		{"tls1.2 CBC-SHA1 only", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, tls.VersionTLS12, false},
		{"tls1.2 RSA key exchange only", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, tls.VersionTLS12, false},
		{"tls1.2 ECDHE GCM", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, tls.VersionTLS12, true},
		{"tls1.3", nil, tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := base.Clone()
			conf.CipherSuites, conf.MaxVersion = tc.suites, tc.max
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
			if err == nil {
				defer conn.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("handshake: %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				t.Logf("negotiated %s %s", tls.VersionName(conn.ConnectionState().Version), tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
			}
		})
	}
}

// The controller serves at most MaxConnections connections at once: one
// more waits until one of them closes.
func TestMaxConnections(t *testing.T) {
	const limit = 8
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.MaxConnections = limit })
	addr, conf := tlsClient(t, c)
	handshake := func(wait time.Duration) (*tls.Conn, error) {
		raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, conf)
		_ = conn.SetDeadline(time.Now().Add(wait))
		if err := conn.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	}
	// The harness's own client may hold some: open until one waits.
	var held []*tls.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for len(held) <= limit {
		conn, err := handshake(time.Second)
		if err != nil {
			break
		}
		held = append(held, conn)
	}
	if len(held) > limit || len(held) == 0 {
		t.Fatalf("%d connections served at once, want at most %d (and some)", len(held), limit)
	}
	t.Logf("held %d connections; the next waits", len(held))
	// One more waits in the accept queue...
	done := make(chan error, 1)
	go func() {
		conn, err := handshake(10 * time.Second)
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("connection %d was served at once (%v)", len(held)+1, err)
	case <-time.After(500 * time.Millisecond):
	}
	// ...until one closes.
	held[0].Close()
	held = held[1:]
	if err := <-done; err != nil {
		t.Errorf("the waiting connection after one closed: %v", err)
	}
}
