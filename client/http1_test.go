package client

import (
	"bufio"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHTTP1: against a server that speaks HTTP/2, a client made WithHTTP1
// speaks HTTP/1.1 (a default one HTTP/2), and its Stream is full duplex
// there too: each line sent is answered while the body is still open, as
// a host's stream needs (an agent's client is made WithHTTP1).
func TestHTTP1(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"proto": %d}`, r.ProtoMajor)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(w, "HTTP/%d %s", r.ProtoMajor, line)
			_ = rc.Flush()
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  []Option
		proto int
	}{
		{"default", nil, 2},
		{"WithHTTP1", []Option{WithHTTP1()}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := New(srv.URL, append(tc.opts, WithCACertFile(ca))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			var out struct{ Proto int }
			if err := c.Do(ctx, "GET", "/proto", nil, &out); err != nil || out.Proto != tc.proto {
				t.Fatalf("GET: HTTP/%d, %v; want HTTP/%d", out.Proto, err, tc.proto)
			}
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = pw.Write([]byte("one\n")) }() // the request is sent once its body starts
			resp, err := c.Stream(ctx, "POST", "/stream", "text/plain", pr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for i, msg := range []string{"one", "two", "three"} {
				if i > 0 {
					if _, err := pw.Write([]byte(msg + "\n")); err != nil {
						t.Fatal(err)
					}
				}
				line, err := br.ReadString('\n')
				if want := fmt.Sprintf("HTTP/%d %s\n", tc.proto, msg); err != nil || line != want {
					t.Fatalf("answer %d on the stream: %q, %v; want %q", i, line, err, want)
				}
			}
		})
	}
}
