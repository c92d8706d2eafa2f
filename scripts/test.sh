#!/usr/bin/env bash
# The whole test suite: installs the toolchains the fixture-freshness tests
# need (clang-14 + wasi-libc, wabt; apt, as root) when they are missing, then
# checks formatting and vet, and runs every test. The race detector runs on
# the concurrent packages that do not compile the Go plugin (which is slow
# under -race).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-toolchains.sh

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt-clean:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
GOOS=wasip1 GOARCH=wasm go vet ./sdk/... ./plugins/echo ./plugins/redis ./plugins/gzip

echo "== go test -race (concurrent packages)"
go test -race -count=1 ./host/internal/plugin/ ./host/internal/transport/ ./host/internal/router/ ./abi/ ./host/internal/watch/ ./host/control/... ./host/internal/fuel/ ./host/internal/mesh/ ./host/internal/wire/ ./host/internal/identity/ ./host/internal/queue/ ./internal/netbaseline/ ./internal/hosttest/...

echo "== go test (everything)"
go test -count=1 ./...

# The comparison benchmarks live in their own module so that what they
# compare against (hashicorp/memberlist) is no dependency of the host:
# build, vet and test it, and run each benchmark once and small (-short,
# -benchtime 1x) so that a benchmark that no longer runs is caught, not
# timed.
echo "== host/internal/bench (nested module: baselines)"
if go list -deps -test ./... | grep -E 'hashicorp/memberlist|nats-io/nats-server|wapc'; then
	echo "a comparison baseline is a dependency of the host module: it belongs in host/internal/bench"; exit 1
fi
(cd host/internal/bench && go build ./... && go vet ./... && go test -count=1 -short -run . -bench . -benchtime 1x ./...)

# Every fuzz target (the decoders of untrusted bytes) runs a few seconds on
# every run, under an address-space cap: a soft limit (GOMEMLIMIT) only
# makes the GC work harder, while RLIMIT_AS makes a runaway allocation
# (wazero once asked for 8 GiB from an 18-byte module) fail at once with
# "out of memory", which the fuzzer reports as a crasher and saves in the
# package's testdata/fuzz/ to be committed. 4 GiB leaves room for the fuzz
# coordinator's mappings and the compiler; 2 GiB was too little.
# (Targets of the nested bench module, which go test cannot reach from
# here, are left out.)
# The budget is a count of executions, not a duration: Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" when a
# duration runs out while a worker is mid-call on a loaded machine
# (golang/go#75804, fixed in Go 1.27). 10000 runs take 1-10 s per target.
# FUZZTIME=0 skips this step (for quick local runs).
fuzztime=${FUZZTIME:-10000x}
if [ "$fuzztime" != 0 ]; then
	echo "== fuzz (every target, $fuzztime each, ulimit -v 4GiB)"
	for pkg in $(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./host/internal/bench/' | xargs -n1 dirname | sort -u); do
		for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
			(ulimit -v $((4 << 20)) && go test -count=1 -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg")
		done
	done
fi
