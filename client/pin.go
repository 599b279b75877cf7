package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Certificate pinning: instead of a CA file, a client may trust the
// controller's CA by the SHA-256 fingerprint of its certificate (the
// controller sends its CA after its own certificate). The server
// certificate must still chain to that CA and name the host.

// WithFingerprint trusts the controller whose certificate chain holds a
// certificate with this SHA-256 fingerprint (hex, colons allowed): its CA,
// or (for a server that does not send its CA) its own certificate.
func WithFingerprint(fp string) Option {
	return func(o *options) error {
		n := NormalizeFingerprint(fp)
		if len(n) != 64 {
			return fmt.Errorf("fingerprint %q: want 64 hex digits (SHA-256)", fp)
		}
		o.pin = n
		return nil
	}
}

// NormalizeFingerprint lower-cases a fingerprint and drops colons and spaces.
func NormalizeFingerprint(fp string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(fp)))
}

// FormatFingerprint writes a fingerprint as colon-separated byte pairs.
func FormatFingerprint(fp string) string {
	var parts []string
	for i := 0; i+2 <= len(fp); i += 2 {
		parts = append(parts, strings.ToUpper(fp[i:i+2]))
	}
	return strings.Join(parts, ":")
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// ErrFingerprintMismatch: the controller's chain lacks the pinned certificate.
var ErrFingerprintMismatch = errors.New("the controller's certificate does not match the pinned fingerprint")

// pinTLS makes conf accept exactly the chains that hold the pinned certificate.
func pinTLS(conf *tls.Config, pin string) {
	conf.InsecureSkipVerify = true //nolint:gosec // VerifyConnection checks the chain against the pin
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the controller sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		for _, c := range cs.PeerCertificates {
			if fingerprint(c) != pin {
				continue
			}
			if c == leaf {
				return nil
			}
			roots := x509.NewCertPool()
			roots.AddCert(c)
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName})
			return err
		}
		return fmt.Errorf("%w %s (run 'photon target set' again if it was re-keyed)", ErrFingerprintMismatch, FormatFingerprint(pin))
	}
}

// PeerCertificate is what FetchCertificate saw.
type PeerCertificate struct {
	// Fingerprint is the SHA-256 (hex) of the certificate to pin: the CA the
	// controller sent, else its own certificate.
	Fingerprint string
	Subject     string
	IsCA        bool
}

// FetchCertificate connects to the controller at baseURL without verifying
// it and returns the certificate to pin, for a person to check.
func FetchCertificate(ctx context.Context, baseURL string) (*PeerCertificate, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}} //nolint:gosec // only to show the fingerprint
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", host, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("the controller sent no certificate")
	}
	c := certs[len(certs)-1]
	return &PeerCertificate{Fingerprint: fingerprint(c), Subject: c.Subject.String(), IsCA: c.IsCA}, nil
}
