// Package photontest is the in-process test harness: etcd (embedded or a
// separately started etcd process), controllers listening on :0, and
// helpers to call them. Tests use it instead of guessing ports.
package photontest
