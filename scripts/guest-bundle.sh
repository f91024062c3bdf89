#!/usr/bin/env bash
# What the user-data way (cloud-init/user-data.yaml) downloads at first boot, made here for a
# cloud without internet access: put both files where the VMs can fetch them (an object store, an
# internal web server) or give them as local paths, and set the variables at the top of the
# user-data to their URLs.
#
#   scripts/guest-bundle.sh OUTDIR
#
#   OUTDIR/rack-VERSION.tar.gz            the agent with its runtime dependencies, installed from
#                                         package-lock.json (nothing to install at first boot)
#   OUTDIR/node-vX.Y.Z-linux-ARCH.tar.gz  this machine's Node.js in the nodejs.org tarball layout
#                                         (or carry nodejs.org's own tarball instead)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "guest-bundle: $*" >&2; exit 1; }
case ${1:-} in -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 1 ] || { sed -n '7p' "$0" | sed 's/^# *//' >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
[ -f "$here/dist/dckinit/main.js" ] || die "$here has no dist/: run npm ci (or npm run build) first"
command -v npm >/dev/null || die "npm is needed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"
echo "guest-bundle: npm pack" >&2
tgz=$(npm pack --ignore-scripts --silent --pack-destination "$work" | tail -1)
tar -xzf "$work/$tgz" -C "$work"
cp package-lock.json "$work/package/"
echo "guest-bundle: runtime dependencies from package-lock.json" >&2
(cd "$work/package" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
touch "$work/package/node_modules/.rack-bundle"
version=$(node -p 'require("./package.json").version')
tar -czf "$out/rack-$version.tar.gz" -C "$work" package
echo "$out/rack-$version.tar.gz"

node_version=$(node --version)
arch=$(node -p 'process.arch')
dir="node-$node_version-linux-$arch"
mkdir -p "$work/$dir/bin"
install -m 0755 "$(command -v node)" "$work/$dir/bin/node"
tar -czf "$out/$dir.tar.gz" -C "$work" "$dir"
echo "$out/$dir.tar.gz"
