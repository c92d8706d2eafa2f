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
GOOS=wasip1 GOARCH=wasm go vet ./sdk/... ./plugins/echo

echo "== go test -race (concurrent packages)"
go test -race -count=1 ./host/plugin/ ./host/router/ ./host/subject/ ./host/watch/ ./host/control/... ./host/fuel/ ./host/mesh/ ./host/wire/ ./host/identity/ ./internal/netbaseline/

echo "== go test (everything)"
go test -count=1 ./...
