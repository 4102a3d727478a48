#!/usr/bin/env bash
# Installs the system packages Ferry's end-to-end tests drive for real: skopeo and containerd as
# clients, CNCF distribution (docker-registry) as an upstream, umoci to build images offline,
# and a C compiler for Ferry's sendfile(2) helper (npm run build compiles it; a test checks it).
# zstd, xz and bzip2: `ferry push images` runs them to decompress bundles (the tests to make them).
# chromium: the status page is checked in a real headless browser; jq runs the Harbor-style API
# line sites use; systemd-analyze verifies the systemd unit.
# redis-server: the lease store of the multi-replica test (test/e2e/replicas.test.ts).
# Idempotent: does nothing when every tool is already on PATH.
set -euo pipefail

declare -A packages=(
  [skopeo]=skopeo
  [umoci]=umoci
  [docker-registry]=docker-registry
  [containerd]=containerd
  [ctr]=containerd
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [cc]=gcc
  [curl]=curl
  [h2load]=nghttp2-client
  [zstd]=zstd
  [xz]=xz-utils
  [bzip2]=bzip2
  [chromium]=chromium
  [jq]=jq
  [systemd-analyze]=systemd
  [redis-server]=redis-server
)

missing=()
for tool in "${!packages[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${packages[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-test-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
