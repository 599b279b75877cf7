// Package version holds the build's version, set by the Makefile's -ldflags.
package version

// Version is the release version, e.g. "1.0.0"; "dev" for local builds.
var Version = "dev"

// GitCommit is the commit the binary was built from.
var GitCommit = ""

// Base is the API base version reported by /v1/info.
const Base = "1.0.0"
