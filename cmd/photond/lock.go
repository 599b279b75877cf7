package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// LockFile is the file in a data dir that a running photond holds locked
// (flock) and writes its pid to.
const LockFile = "photond.lock"

// lockDataDir makes dir (0700, also when it existed with a looser mode:
// it holds tenants' state) and takes DIR/photond.lock, so that a second
// photond on the same data dir (controller, dev or agent) fails at once
// instead of waiting forever for etcd's database lock. The lock is the
// kernel's (flock): it goes with the process, however it ends, and is not
// passed to child processes (QEMU). unlock releases it.
func lockDataDir(dir string) (unlock func(), err error) {
	if dir == "" {
		return nil, errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil {
				return nil, fmt.Errorf("data dir %s in use by pid %d (%s is locked)", dir, pid, path)
			}
			return nil, fmt.Errorf("data dir %s in use by another photond (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("data dir: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = f.Close() // releases the lock
	}, nil
}

// DefaultShutdownTimeout bounds a graceful shutdown (--shutdown-timeout).
const DefaultShutdownTimeout = 30 * time.Second

// signalContext returns a context canceled by the first SIGINT or SIGTERM:
// the daemon shuts down gracefully. A second signal, or timeout passing
// after the first, ends the process at once (exit status 1), so a
// shutdown that hangs (an unreachable etcd, a stuck driver) never keeps
// photond running. stop undoes the signal handling.
func signalContext(parent context.Context, timeout time.Duration) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-done:
			return
		}
		fmt.Fprintf(os.Stderr, "photond: %v: shutting down (again to stop at once; forced after %s)\n", sig, timeout)
		cancel()
		select {
		case sig = <-sigs:
			fmt.Fprintf(os.Stderr, "photond: %v again: stopping now\n", sig)
		case <-time.After(timeout):
			fmt.Fprintf(os.Stderr, "photond: shutdown did not finish within %s: stopping now\n", timeout)
		case <-done:
			return
		}
		os.Exit(1)
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
