#!/bin/sh
# Bakes dckinit into a VM template. Run as root from an unpacked `npm pack` of this repository,
# an unpacked offline bundle (scripts/guest-bundle.sh), or a checkout with dist/ built, either
# inside the image being built (a builder VM, a chroot, virt-customize) or on a build host with
# ROOT set to the image's mounted root filesystem:
#   sh cloud-init/template/install.sh                 # into this machine's /
#   ROOT=/mnt/image sh cloud-init/template/install.sh # into a mounted image
# The image needs Node.js >= 20.18.1 at /usr/bin/node (checked there, not on the build host).
# Then snapshot it and upload it to Glance.
set -eu
NODE_MIN=20.18.1
here=$(cd "$(dirname "$0")/../.." && pwd)
root=${ROOT:-}
die() { echo "install.sh: $*" >&2; exit 1; }

[ -f "$here/dist/dckinit/main.js" ] || die "$here has no dist/dckinit/main.js: run it from an unpacked npm pack, or run npm run build first"

# The node the agent will run under: the image's own. Run it from here when it can run on this
# machine (same architecture), else inside the image.
node_bin="$root/usr/bin/node"
[ -x "$node_bin" ] || die "no Node.js at ${root:-}/usr/bin/node: the image needs Node.js >= $NODE_MIN there first"
version=$("$node_bin" --version 2>/dev/null || { [ -n "$root" ] && chroot "$root" /usr/bin/node --version 2>/dev/null; }) \
  || die "cannot run ${node_bin} (here or chrooted into ${root:-/})"
version=${version#v}
if ! printf '%s\n%s\n' "$NODE_MIN" "$version" | sort -C -V; then
  die "Node.js >= $NODE_MIN is needed at ${root:-}/usr/bin/node (found $version)"
fi

mkdir -p "$root/opt/rack" "$root/etc/dckinit" "$root/etc/cloud/cloud.cfg.d" "$root/etc/systemd/system/multi-user.target.wants"
cp -r "$here/dist" "$here/package.json" "$here/systemd" "$here/cloud-init" "$root/opt/rack/"
[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$root/opt/rack/"
if [ -f "$here/node_modules/.rack-bundle" ]; then
  # An offline bundle carries its runtime dependencies, installed from the lockfile when it was made.
  rm -rf "$root/opt/rack/node_modules"
  cp -a "$here/node_modules" "$root/opt/rack/node_modules"
else
  # --ignore-scripts: `prepare` would need the TypeScript compiler (dist/ is already built), and
  # the only native build (better-sqlite3) serves the kernel, which a VM does not run. With a
  # lockfile (a checkout) the image gets exactly the tested versions.
  command -v npm >/dev/null || die "npm is needed to install dckinit's dependencies (or use an offline bundle: scripts/guest-bundle.sh)"
  if [ -f "$root/opt/rack/package-lock.json" ]; then npm_cmd=ci; else npm_cmd=install; fi
  (cd "$root/opt/rack" && npm "$npm_cmd" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# Apps import 'rack/libdck': Node looks for node_modules in every directory above the importing
# file, up to /, so this one link serves an app anywhere in the image.
mkdir -p "$root/node_modules"
ln -sfn ../opt/rack "$root/node_modules/rack"
install -m 0644 "$here/cloud-init/template/99-rack.cfg" "$root/etc/cloud/cloud.cfg.d/99-rack.cfg"
[ -f "$root/etc/dckinit/config.yaml" ] || install -m 0644 "$here/cloud-init/template/config.yaml" "$root/etc/dckinit/config.yaml"
install -m 0644 "$here/systemd/dckinit.service" "$root/etc/systemd/system/dckinit.service"
# What `systemctl enable` does, without needing a running systemd (chroots, mounted images).
ln -sf /etc/systemd/system/dckinit.service "$root/etc/systemd/system/multi-user.target.wants/dckinit.service"
echo "dckinit installed in ${root:-/}: put your app in /opt/app and its roles in /etc/dckinit/config.yaml"
