// Package fault holds the store's bad-days suite: a controller (in
// process, the real handlers) and fake hosts on an etcd server process
// that the tests stop, kill, slow down (a delaying TCP proxy), refuse big
// transactions (--max-request-bytes) and run out of space (NOSPACE), while
// clients create tenants, projects and VMs through the HTTP API. Each
// test records what every request got and how long it took, then checks
// the invariants: no 500 and no answer without a status, no request past
// its bound, no acknowledged write lost, usage exact, no task left
// unfinished, every host with a live agent READY again.
//
// Run with -v to see the counts (faults injected, requests, writes
// acknowledged and lost, time to recover); PHOTON_FAULT_REPORT names a
// file to append them to as well.
package fault
