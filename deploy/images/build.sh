#!/usr/bin/env bash
# Builds the images deploy/ names (danm/cni, danm/netwatcher, danm/svcwatcher, danm/webhook, all :latest) and the
# runtime end-to-end test's sandbox image (danm/pause:latest) with Debian's buildah, without a registry or a daemon,
# into OCI archives that `ctr images import` (or `podman load`, `skopeo copy oci-archive:...`) takes:
#
#   deploy/images/build.sh OUT_DIR [NAME...]       # default: every image; writes OUT_DIR/<name>.oci.tar
#
# The binaries come from this checkout's build ($DANM_BIN_DIR, default $CARGO_TARGET_DIR/debug, i.e. after
# `make build`), stripped; the plugins from $DANM_PLUGIN_DIR (default build/plugins, `make guests`). The images are
# `FROM scratch`: each holds its binaries and the C libraries they link (copied from this machine, which is the base
# "built locally"), and the installer image adds Debian's static busybox for its shell. buildah keeps its storage in
# a temporary directory (vfs driver, chroot isolation: no fuse, no user namespaces needed), removed afterwards.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:?usage: build.sh OUT_DIR [NAME...]}"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(pause cni netwatcher svcwatcher webhook)
bin_dir="${DANM_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/debug}"
plugin_dir="${DANM_PLUGIN_DIR:-$repo/build/plugins}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bah() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

# stage_bin ROOTFS NAME: the binary, stripped, in /usr/local/bin, and every library it links at the path the dynamic
# loader looks for it.
stage_bin() {
    local rootfs="$1" name="$2" src="$bin_dir/$2"
    [ -x "$src" ] || { echo "build.sh: $src is missing (make build)" >&2; exit 1; }
    mkdir -p "$rootfs/usr/local/bin"
    strip -o "$rootfs/usr/local/bin/$name" "$src"
    ldd "$src" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}

stage() {
    local name="$1" ctx="$work/ctx-$1"
    mkdir -p "$ctx/rootfs"
    case "$name" in
        pause)
            rustc --edition 2024 -O -C target-feature=+crt-static -C panic=abort -C strip=symbols \
                -o "$ctx/pause" "$here/pause.rs"
            ;;
        cni)
            for b in danm fakeipam danmctl; do stage_bin "$ctx/rootfs" "$b"; done
            mkdir -p "$ctx/rootfs/usr/share/danm/plugins" "$ctx/rootfs/bin"
            cp "$plugin_dir"/*.wasm "$ctx/rootfs/usr/share/danm/plugins/"
            cp /bin/busybox "$ctx/rootfs/bin/busybox"
            for applet in sh cat chmod cp ls mkdir mv rm sleep basename; do
                ln -s busybox "$ctx/rootfs/bin/$applet"
            done
            ;;
        netwatcher | svcwatcher) stage_bin "$ctx/rootfs" "$name" ;;
        webhook) stage_bin "$ctx/rootfs" danm-webhook ;;
        *) echo "build.sh: no image named $name" >&2; exit 1 ;;
    esac
    echo "$ctx"
}

for name in "${names[@]}"; do
    start=$(date +%s%N)
    ctx="$(stage "$name")"
    tag="danm/$name:latest"
    bah bud --quiet --isolation chroot --layers=false -f "$here/$name.Containerfile" -t "$tag" "$ctx" >/dev/null
    rm -f "$out/$name.oci.tar"
    # The name kubelet resolves `danm/<name>:latest` to, so a runtime that imports the archive finds the image.
    bah push --quiet "$tag" "oci-archive:$out/$name.oci.tar:docker.io/$tag"
    bah rmi --force "$tag" >/dev/null
    rm -rf "$ctx"
    echo "build.sh: $tag -> $out/$name.oci.tar ($(du -h "$out/$name.oci.tar" | cut -f1), $(( ($(date +%s%N) - start) / 1000000 )) ms)"
done
