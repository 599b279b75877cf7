// Package e2e holds end-to-end tests: they run the real binaries (bin/photond,
// bin/photon) as processes and check what a user would see.
package e2e
