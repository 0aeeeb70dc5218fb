#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine (root) lacks to build and test danm. Idempotent and quick when done before.
set -euo pipefail

need_apt=()
for pkg in containernetworking-plugins iproute2 iputils-ping python3 python3-yaml make gcc curl openssl \
           golang-go golang-github-appc-cni-dev librsvg2-bin \
           containerd runc buildah busybox-static protobuf-compiler binutils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${need_apt[*]}; run as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v rustup >/dev/null || { echo "setup: rustup is required (https://rustup.rs)" >&2; exit 1; }
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
# The fuzz targets (make fuzz): cargo-fuzz from crates.io, pinned by its lock file.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
