#!/bin/sh
# Bakes dckinit into a VM template. Run as root inside the image being built (a chroot,
# virt-customize, or a builder VM), from an unpacked `npm pack` of this repository:
#   sh cloud-init/template/install.sh
# Needs Node.js >= 20.18.1 at /usr/bin/node. Then snapshot the image and upload it to Glance.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' \
  || { echo "install.sh: Node.js >= 20.18.1 is needed at /usr/bin/node" >&2; exit 1; }
mkdir -p /opt/rack /etc/dckinit /etc/cloud/cloud.cfg.d
cp -r "$here/dist" "$here/package.json" "$here/package-lock.json" "$here/systemd" /opt/rack/
(cd /opt/rack && npm ci --omit=dev --no-audit --no-fund)
install -m 0644 "$here/cloud-init/template/99-rack.cfg" /etc/cloud/cloud.cfg.d/99-rack.cfg
[ -f /etc/dckinit/config.yaml ] || install -m 0644 "$here/cloud-init/template/config.yaml" /etc/dckinit/config.yaml
install -m 0644 /opt/rack/systemd/dckinit.service /etc/systemd/system/dckinit.service
systemctl enable dckinit.service 2>/dev/null || ln -sf /etc/systemd/system/dckinit.service /etc/systemd/system/multi-user.target.wants/dckinit.service
echo "dckinit installed: put your app in /opt/app and its roles in /etc/dckinit/config.yaml"
