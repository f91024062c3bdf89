#!/bin/sh
# Bakes dckinit into a VM template. Run as root from an unpacked `npm pack` of this repository
# (or a checkout with dist/ built), either inside the image being built (a builder VM, a chroot,
# virt-customize) or on a build host with ROOT set to the image's mounted root filesystem:
#   sh cloud-init/template/install.sh                 # into this machine's /
#   ROOT=/mnt/image sh cloud-init/template/install.sh # into a mounted image
# The image needs Node.js >= 20.18.1 at /usr/bin/node. Then snapshot it and upload it to Glance.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
root=${ROOT:-}
die() { echo "install.sh: $*" >&2; exit 1; }

[ -f "$here/dist/dckinit/main.js" ] || die "$here has no dist/dckinit/main.js: run it from an unpacked npm pack, or run npm run build first"
command -v npm >/dev/null || die "npm is needed to install dckinit's dependencies"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' \
  || die "Node.js >= 20.18.1 is needed (found $(node --version))"

mkdir -p "$root/opt/rack" "$root/etc/dckinit" "$root/etc/cloud/cloud.cfg.d" "$root/etc/systemd/system/multi-user.target.wants"
cp -r "$here/dist" "$here/package.json" "$here/systemd" "$root/opt/rack/"
[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$root/opt/rack/"
# --ignore-scripts: `prepare` would need the TypeScript compiler (dist/ is already built), and the
# only native build (better-sqlite3) serves the kernel, which a VM does not run.
# With a lockfile (a checkout) the image gets exactly the tested versions.
if [ -f "$root/opt/rack/package-lock.json" ]; then npm_cmd=ci; else npm_cmd=install; fi
(cd "$root/opt/rack" && npm "$npm_cmd" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
install -m 0644 "$here/cloud-init/template/99-rack.cfg" "$root/etc/cloud/cloud.cfg.d/99-rack.cfg"
[ -f "$root/etc/dckinit/config.yaml" ] || install -m 0644 "$here/cloud-init/template/config.yaml" "$root/etc/dckinit/config.yaml"
install -m 0644 "$here/systemd/dckinit.service" "$root/etc/systemd/system/dckinit.service"
# What `systemctl enable` does, without needing a running systemd (chroots, mounted images).
ln -sf /etc/systemd/system/dckinit.service "$root/etc/systemd/system/multi-user.target.wants/dckinit.service"
echo "dckinit installed in ${root:-/}: put your app in /opt/app and its roles in /etc/dckinit/config.yaml"
