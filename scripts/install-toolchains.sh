#!/usr/bin/env bash
# Installs the Wasm guest toolchains needed to build the first-party C plugins
# and the WAT test fixtures (see scripts/build-fixtures.sh):
#
#   clang-14, lld-14, wasi-libc, libclang-rt-14-dev-wasm32  (C -> wasm32-wasi)
#   wabt                                                     (wat2wasm)
#   iproute2                                                 (ip netns: the mDNS tests run
#                                                             in network namespaces they create)
#   mosquitto, mosquitto-clients                             (the mqtt transport's tests start a
#                                                             broker and use mosquitto_pub/_sub)
#   redis-server                                             (the redis transport's tests start
#                                                             one on loopback; internal/redistest)
#
# Idempotent: only packages that are missing are installed, and nothing is
# printed when everything is already present. Installing needs root (apt-get);
# run as another user it only checks and names what is missing.
#
# Debian/Ubuntu only (apt). Exit status: 0 when all tools are present
# afterwards, 1 when something is missing and could not be installed.
set -euo pipefail

packages=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 wabt iproute2 mosquitto mosquitto-clients redis-server)

# have_pkg NAME: true when the package is installed, judged by dpkg and, for
# the packages that provide a command, by that command being on PATH.
have_pkg() {
	local pkg=$1
	case "$pkg" in
	clang-14) command -v clang-14 >/dev/null 2>&1 || return 1 ;;
	lld-14) command -v wasm-ld-14 >/dev/null 2>&1 || command -v ld.lld-14 >/dev/null 2>&1 || return 1 ;;
	wabt) command -v wat2wasm >/dev/null 2>&1 && return 0 ;;
	iproute2) command -v ip >/dev/null 2>&1 && return 0 ;;
	mosquitto) command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || return 1 ;;
	mosquitto-clients) command -v mosquitto_pub >/dev/null 2>&1 || return 1 ;;
	redis-server) command -v redis-server >/dev/null 2>&1 && return 0 ;;
	esac
	command -v dpkg-query >/dev/null 2>&1 || return 1
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
	have_pkg "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-toolchains: missing packages: ${missing[*]}" >&2
	echo "install-toolchains: run as root, or: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-toolchains: apt-get not found; install these packages by hand: ${missing[*]}" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-toolchains: apt-get failed installing: ${missing[*]}" >&2
	exit 1
fi

still=()
for p in "${missing[@]}"; do
	have_pkg "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "install-toolchains: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
