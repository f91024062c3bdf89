#!/usr/bin/env bash
# Builds the Debian root filesystems that the nspawn compute driver boots (see docs/guests.md).
#
#   scripts/guest-image.sh base                       the stock rootfs tarball (cached)
#   scripts/guest-image.sh stock NAME                 image NAME: the stock rootfs, for the user-data way
#   scripts/guest-image.sh baked NAME --app DIR [--modules PKG,...]
#                                                     image NAME: dckinit baked in by install.sh, DIR's
#                                                     directories laid over / (a sim template's layout)
#   scripts/guest-image.sh ls | rm NAME
#
# The stock rootfs is built once with mmdebstrap from this machine's own apt sources and cached;
# a baked image is rebuilt only when what goes into it changed. Everything comes from here: no
# other download, so it works where only the distribution mirror is reachable. Needs root.
set -euo pipefail

SUITE=${RACK_IMAGE_SUITE:-bookworm}
PACKAGES=${RACK_IMAGE_PACKAGES:-systemd,systemd-sysv,dbus,cloud-init,curl,ca-certificates,iproute2,procps,xz-utils}
# apt sources for mmdebstrap: this machine's enabled .sources / .list files unless set.
SOURCES=${RACK_IMAGE_SOURCES:-}
CACHE=${RACK_IMAGE_CACHE:-/var/cache/rack}
STORE=${RACK_IMAGES:-/var/lib/rack/images}
# The guest's Node.js: this machine's node binary runs in the guest (it needs only glibc and
# libstdc++), which is also how an image gets Node >= 20.18.1 without any download.
NODE_BIN=${RACK_IMAGE_NODE:-$(command -v node || true)}

here=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "guest-image: $*" >&2; exit 1; }
step() { echo "guest-image: $*" >&2; }
usage() { sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
help() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
name_ok() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "image name \"$1\" must be a plain name (letters, digits, . _ -)"; }
hash_of() { sha256sum | cut -c1-16; }

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in -h|--help) help ;; esac
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap and the image files belong to root)"

sources() {
  if [ -n "$SOURCES" ]; then
    for f in $SOURCES; do [ -f "$f" ] || die "RACK_IMAGE_SOURCES: no file $f"; echo "$f"; done
    return
  fi
  local found=0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -Eq '^[[:space:]]*(deb |URIs:)' "$f" && { echo "$f"; found=1; }
  done
  [ $found -eq 1 ] || die "no apt sources on this machine: set RACK_IMAGE_SOURCES to a .list or .sources file"
}

# The stock rootfs as a tarball, cached by everything that goes into it.
base() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
  local srcs key tar
  mapfile -t srcs < <(sources)
  key=$( { echo "format 1 $SUITE $PACKAGES"; cat "${srcs[@]}"; } | hash_of)
  tar="$CACHE/base-$SUITE-$key.tar"
  if [ -f "$tar" ]; then
    step "stock rootfs: cached $tar"
  else
    mkdir -p "$CACHE"
    step "stock rootfs: mmdebstrap $SUITE (minbase + $PACKAGES) from ${srcs[*]}; takes minutes"
    mmdebstrap --variant=minbase --include="$PACKAGES" --quiet "$SUITE" "$tar.tmp" "${srcs[@]}" \
      || { rm -f "$tar.tmp"; die "mmdebstrap failed"; }
    mv "$tar.tmp" "$tar"
    step "stock rootfs: $(du -h "$tar" | cut -f1) in $tar"
  fi
  echo "$tar"
}

# Unpacks the stock rootfs into $1/rootfs and clears what belongs to the build host.
unpack() {
  local dir=$1 tar=$2
  step "unpacking $(basename "$tar")"
  mkdir -p "$dir/rootfs"
  tar -xf "$tar" -C "$dir/rootfs"
  # Each boot gets its identity from the metadata (hostname) and the driver (resolv.conf).
  rm -f "$dir/rootfs/etc/resolv.conf"
  : >"$dir/rootfs/etc/resolv.conf"
  echo localhost >"$dir/rootfs/etc/hostname"
  : >"$dir/rootfs/etc/machine-id"
}

# Moves a finished image into the store, replacing any old one at once.
publish() {
  local name=$1 dir=$2 kind=$3 key=$4
  printf '{"name":"%s","kind":"%s","key":"%s","created":"%s"}\n' "$name" "$kind" "$key" "$(date -u +%FT%TZ)" >"$dir/image.json"
  rm -rf "$STORE/$name.old"
  [ -d "$STORE/$name" ] && mv "$STORE/$name" "$STORE/$name.old"
  mv "$dir" "$STORE/$name"
  rm -rf "$STORE/$name.old"
  step "image $name ($kind) ready: $STORE/$name"
}

current_key() { sed -n 's/.*"key":"\([^"]*\)".*/\1/p' "$STORE/$1/image.json" 2>/dev/null || true; }

# Node packages the app imports, with their dependencies, from this checkout's node_modules
# (built here for the same Node.js the guest runs, so native modules work there too).
module_closure() {
  node -e '
    const { readFileSync } = require("node:fs");
    const seen = new Set();
    const walk = (n) => {
      if (seen.has(n)) return;
      let pkg;
      try { pkg = JSON.parse(readFileSync(`node_modules/${n}/package.json`, "utf8")); }
      catch { console.error(`guest-image: --modules: no package ${n} in node_modules (run npm ci)`); process.exit(1); }
      seen.add(n);
      for (const d of Object.keys(pkg.dependencies ?? {})) walk(d);
    };
    for (const n of process.argv[1].split(",").filter(Boolean)) walk(n);
    console.log([...seen].join("\n"));' "$1"
}

case $cmd in
  base)
    [ $# -eq 0 ] || usage
    base >/dev/null
    ;;
  stock)
    [ $# -eq 1 ] || usage
    name=$1; name_ok "$name"
    tar=$(base)
    key=$(echo "stock $(basename "$tar")" | hash_of)
    if [ "$(current_key "$name")" = "$key" ]; then step "image $name is up to date"; exit 0; fi
    mkdir -p "$STORE"; work=$(mktemp -d "$STORE/.build-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    unpack "$work" "$tar"
    publish "$name" "$work" stock "$key"
    ;;
  baked)
    [ $# -ge 1 ] || usage
    name=$1; shift; name_ok "$name"
    app="" modules=""
    while [ $# -gt 0 ]; do
      case $1 in
        --app) app=${2:-}; shift 2 || usage ;;
        --modules) modules=${2:-}; shift 2 || usage ;;
        *) usage ;;
      esac
    done
    [ -n "$app" ] && [ -d "$app" ] || die "--app DIR: give the app's directory (its etc/dckinit/config.yaml, opt/...)"
    [ -f "$app/etc/dckinit/config.yaml" ] || die "$app has no etc/dckinit/config.yaml: which command would each role run?"
    [ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || die "no node binary to copy into the image (set RACK_IMAGE_NODE)"
    [ -f "$here/dist/dckinit/main.js" ] || die "$here has no dist/: run npm ci (or npm run build) first"
    tar=$(base)
    app=$(cd "$app" && pwd)
    cd "$here"
    [ -z "$modules" ] || closure=$(module_closure "$modules")
    key=$( { echo "baked $(basename "$tar") $modules"; sha256sum "$NODE_BIN";
             find dist cloud-init systemd package.json package-lock.json "$app" -type f -not -path '*/node_modules/*' -print0 | sort -z | xargs -0 sha256sum; } | hash_of)
    if [ "$(current_key "$name")" = "$key" ]; then step "image $name is up to date"; exit 0; fi
    mkdir -p "$STORE"; work=$(mktemp -d "$STORE/.build-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    unpack "$work" "$tar"
    root="$work/rootfs"
    step "node: $NODE_BIN ($("$NODE_BIN" --version)) -> /usr/bin/node"
    install -m 0755 "$NODE_BIN" "$root/usr/bin/node"
    step "dckinit: cloud-init/template/install.sh"
    ROOT="$root" npm_config_prefer_offline=true sh cloud-init/template/install.sh >&2
    step "app: the directories of $app laid over /"
    for d in "$app"/*/; do
      d=${d%/}; b=$(basename "$d")
      case $b in src|node_modules) continue ;; esac
      cp -a "$d" "$root/"
    done
    # The flavors the app's image.yaml declares, beside the rootfs (the nspawn driver reads them).
    [ ! -f "$app/image.yaml" ] || cp "$app/image.yaml" "$work/image.yaml"
    if [ -n "$modules" ]; then
      step "modules: $(echo "$closure" | tr '\n' ' ')-> /node_modules"
      for m in $closure; do mkdir -p "$root/node_modules/$(dirname "$m")"; cp -a "node_modules/$m" "$root/node_modules/$m"; done
    fi
    publish "$name" "$work" baked "$key"
    ;;
  ls)
    [ -d "$STORE" ] || exit 0
    for d in "$STORE"/*/; do [ -f "$d/image.json" ] && cat "$d/image.json"; done
    ;;
  rm)
    [ $# -eq 1 ] || usage
    name_ok "$1"
    [ -d "$STORE/$1" ] || die "no image $1 in $STORE"
    rm -rf "${STORE:?}/$1"
    ;;
  *) usage ;;
esac
