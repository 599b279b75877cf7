// Package photontest is the in-process test harness: etcd (embedded or a
// separately started etcd process, which a test can stop, kill and start
// again), controllers listening on :0, agents on the fake driver, helpers
// to call them, and the invariants robustness tests check (usage equal to
// what is placed and held, no task unfinished). Tests use it instead of
// guessing ports.
package photontest
