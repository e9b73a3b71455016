#!/usr/bin/env bash
# Regenerates the HCL2 specs and the docs partials with packer-sdc. Its
# struct-markdown only works inside a directory named packer-plugin-*, so the
# generators run through such a link to this work tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-tools.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$root" "$tmp/packer-plugin-amigate"
cd "$tmp/packer-plugin-amigate"
PATH="$root/.tools/bin:$PATH" go generate ./...

# The web docs: docs/packer with the partials included. renderdocs does not
# truncate the files it overwrites, so the destination starts empty.
cd "$root"
rm -rf .web-docs
"$root/.tools/bin/packer-sdc" renderdocs -src docs/packer -partials docs-partials -dst .web-docs
