#!/usr/bin/env bash
# Builds danm's plugins for wasm32-wasip2 and copies them to <repo>/target-plugins/:
#   target-plugins/<name>.wasm        the real plugins (ipvlan, macvlan, sriov, bridge, rules): install these
#   target-plugins/test/<name>.wasm   the misbehaving test plugins (trap, spin, hog, flood, oldwit, badjson, dupe)
# CARGO_TARGET_DIR defaults to $HOME/.cache/danm-guests-target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${DANM_PLUGIN_OUT:-$here/../target-plugins}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/danm-guests-target}"
cd "$here"
cargo build --release --target wasm32-wasip2
rel="$CARGO_TARGET_DIR/wasm32-wasip2/release"
mkdir -p "$out/test"
for p in ipvlan macvlan sriov bridge rules; do
    cp "$rel/danm_guest_$p.wasm" "$out/$p.wasm.tmp" && mv "$out/$p.wasm.tmp" "$out/$p.wasm"
done
for p in trap spin hog flood oldwit badjson dupe; do
    cp "$rel/danm_test_guest_$p.wasm" "$out/test/$p.wasm.tmp" && mv "$out/test/$p.wasm.tmp" "$out/test/$p.wasm"
done
ls -l "$out" "$out/test"
