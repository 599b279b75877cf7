#!/usr/bin/env bash
# fuzz.sh: a short fuzz pass over every Fuzz target in the module.
#
#   FUZZTIME=10s scripts/fuzz.sh [PACKAGES...]   (default ./...)
#
# `go test -fuzz` takes one target in one package at a time, so this lists the
# targets with `go test -list` and runs each for FUZZTIME. A failing input is
# written to the package's testdata/fuzz/ by go test; commit it as a regression.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

FUZZTIME=${FUZZTIME:-10s}
pkgs=("$@")
((${#pkgs[@]})) || pkgs=(./...)

# Only packages whose test files declare a Fuzz function need compiling for -list.
mapfile -t cands < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "${pkgs[@]}" |
	while read -r ip dir; do
		if grep -lqs '^func Fuzz' "$dir"/*_test.go; then echo "$ip"; fi
	done)

if ((${#cands[@]} == 0)); then
	echo "fuzz: no Fuzz targets"
	exit 0
fi

# `go test -list` prints a package's names, then its "ok  pkg" line.
listing=$(go test -list '^Fuzz' "${cands[@]}")
mapfile -t targets < <(printf '%s\n' "$listing" |
	awk '/^Fuzz/ {names[n++] = $1; next}
	     /^ok[ \t]/ {for (i = 0; i < n; i++) print $2, names[i]; n = 0}')

failed=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $pkg $name for $FUZZTIME"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		echo "fuzz: FAIL $pkg $name"
		failed=$((failed + 1))
	fi
done
echo "fuzz: ${#targets[@]} targets, $failed failed"
((failed == 0))
