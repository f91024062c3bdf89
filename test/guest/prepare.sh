#!/usr/bin/env bash
# What `npm run test:guest` needs before its tests: root, systemd-nspawn and mmdebstrap, a built
# checkout, the suite's images (the stock rootfs is cached, a baked image is rebuilt only when
# what goes into it changed) and the mirror the user-data way downloads from.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "test:guest: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (it boots systemd-nspawn machines in network namespaces)"; exit 1; }
missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { say "missing ${missing[*]} and no apt-get to install them"; exit 1; }
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "building dist/"
npm run --silent build
say "images"
scripts/guest-image.sh baked rack-test-app --app test/guest/fixtures/guest-app
scripts/guest-image.sh stock rack-test-stock
mirror=${RACK_TEST_MIRROR:-/var/cache/rack/test-mirror}
say "mirror for the user-data way: $mirror"
rm -rf "$mirror"
scripts/guest-bundle.sh "$mirror" >/dev/null
