#!/usr/bin/env bash
# Builds the checked-in Wasm artifacts from their sources:
#
#   testdata/wat/NAME.wat      -> testdata/wat/NAME.wasm       (wat2wasm, wabt)
#   plugins/hello-c/plugin.c   -> plugins/hello-c/hello.wasm   (clang-14, sdk/c)
#                                 plugins/hello-c/hello.wasm.clang-version
#   plugins/mqtt/mqtt.c        -> plugins/mqtt/mqtt.wasm       (clang-14, sdk/c transport half)
#                                 plugins/mqtt/mqtt.wasm.clang-version
#   plugins/jsoncbor/jsoncbor.c -> plugins/jsoncbor/jsoncbor.wasm (clang-14, sdk/c codec half)
#                                 plugins/jsoncbor/jsoncbor.wasm.clang-version
#
# Usage: scripts/build-fixtures.sh [--out DIR] [all|wat|c]
#
#   --out DIR   write the outputs under DIR, mirroring the repository layout
#               (DIR/testdata/wat/..., DIR/plugins/hello-c/...) instead of
#               next to the sources; the freshness tests in plugins/ use this
#               to rebuild into a temporary directory and compare bytes.
#   wat | c     build only the WAT fixtures or only the C plugins (default: all).
#
# The outputs are deterministic: the same sources and toolchain give the same
# bytes. hello.wasm.clang-version records the toolchain that built hello.wasm
# (clang and wasi-libc versions), so the freshness test only compares bytes
# when the local toolchain is the same. Install the toolchains with
# scripts/install-toolchains.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=""
what=all
while [ $# -gt 0 ]; do
	case "$1" in
	--out)
		[ $# -ge 2 ] || { echo "build-fixtures: --out needs a directory" >&2; exit 2; }
		mkdir -p "$2"
		out=$(cd "$2" && pwd)
		shift 2
		;;
	--out=*)
		mkdir -p "${1#--out=}"
		out=$(cd "${1#--out=}" && pwd)
		shift
		;;
	all | wat | c)
		what=$1
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-fixtures: unknown argument: $1 (usage: build-fixtures.sh [--out DIR] [all|wat|c])" >&2
		exit 2
		;;
	esac
done
dest=${out:-$root}

need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "build-fixtures: $1 not found; run scripts/install-toolchains.sh" >&2
	exit 1
}

# Relative paths from the repository root everywhere, so nothing about the
# checkout location can reach the outputs.
cd "$root"

# toolchain_id prints the identity of the C toolchain that hello.wasm depends on.
toolchain_id() {
	clang-14 --version | head -n 1
	local libc
	libc=$(dpkg-query -W -f='${Version}' wasi-libc 2>/dev/null || true)
	echo "wasi-libc ${libc:-unknown}"
}

if [ "$what" = all ] || [ "$what" = wat ]; then
	need wat2wasm
	mkdir -p "$dest/testdata/wat"
	shopt -s nullglob
	for src in testdata/wat/*.wat; do
		wat2wasm "$src" -o "$dest/${src%.wat}.wasm"
	done
	shopt -u nullglob
fi

if [ "$what" = all ] || [ "$what" = c ]; then
	need clang-14
	mkdir -p "$dest/plugins/hello-c"
	clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
		-Wl,--strip-all -I sdk/c \
		-o "$dest/plugins/hello-c/hello.wasm" \
		plugins/hello-c/plugin.c sdk/c/pycomms.c
	chmod 0644 "$dest/plugins/hello-c/hello.wasm"
	toolchain_id >"$dest/plugins/hello-c/hello.wasm.clang-version"
	mkdir -p "$dest/plugins/mqtt"
	clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
		-Wl,--strip-all -I sdk/c \
		-o "$dest/plugins/mqtt/mqtt.wasm" \
		plugins/mqtt/mqtt.c sdk/c/pycomms_transport.c
	chmod 0644 "$dest/plugins/mqtt/mqtt.wasm"
	toolchain_id >"$dest/plugins/mqtt/mqtt.wasm.clang-version"
	mkdir -p "$dest/plugins/jsoncbor"
	clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
		-Wl,--strip-all -I sdk/c \
		-o "$dest/plugins/jsoncbor/jsoncbor.wasm" \
		plugins/jsoncbor/jsoncbor.c sdk/c/pycomms_codec.c
	chmod 0644 "$dest/plugins/jsoncbor/jsoncbor.wasm"
	toolchain_id >"$dest/plugins/jsoncbor/jsoncbor.wasm.clang-version"
fi
