#!/usr/bin/env bash
# Builds the pinned development tools into .tools/bin from the Go module
# proxy, each in a throwaway wrapper module so their dependencies stay out of
# the plugin's go.mod. Idempotent: a tool already built is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

SDK_VERSION=v0.6.6 # same as go.mod

build() { # name module@version package [extra go.mod lines]
  local name=$1 modver=$2 pkg=$3 extra=${4:-}
  [ -x "$bin/$name" ] && return 0
  local dir
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' RETURN
  (
    cd "$dir"
    go mod init "tools/$name" >/dev/null 2>&1
    [ -n "$extra" ] && printf '%s\n' "$extra" >>go.mod
    go get "$modver" "$pkg@${modver#*@}" >/dev/null
    go build -o "$bin/$name" "$pkg"
  )
  echo "built $bin/$name"
}

CTY="replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3"

build packer-sdc "github.com/hashicorp/packer-plugin-sdk@$SDK_VERSION" \
  github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc "$CTY"

# The real packer and amazon plugin, for the end-to-end run (make e2e);
# about 5 minutes and 3 GB of memory on a cold build cache.
if [ "${1:-}" = "--packer" ]; then
  build packer github.com/hashicorp/packer@v1.12.0 github.com/hashicorp/packer "$CTY"
  build packer-plugin-amazon github.com/hashicorp/packer-plugin-amazon@v1.8.0 github.com/hashicorp/packer-plugin-amazon "$CTY"
fi
