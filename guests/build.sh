#!/usr/bin/env bash
# Builds danm's plugins for wasm32-wasip2 and copies them, named by what they are, to
#   $DANM_PLUGIN_DIR (default <repo>/build/plugins)/<name>.wasm          ipvlan, macvlan, sriov, bridge, rules
#   $DANM_TEST_PLUGIN_DIR (default <repo>/build/test-plugins)/<name>.wasm trap, spin, hog, flood, oldwit, badjson, dupe,
#                                                                           clock
#   $DANM_EXTRA_PLUGIN_DIR (default <repo>/build/extra-plugins)/host-device.wasm
#       the backend template (guests/template), built by a cargo invocation of its own as an outside author's crate
#       is; staged apart from build/plugins because it is the plugin a test drops into a running node later
# (the same directories `make guests` fills). CARGO_TARGET_DIR defaults to $HOME/.cache/danm-guests-target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${DANM_PLUGIN_DIR:-$here/../build/plugins}"
test_out="${DANM_TEST_PLUGIN_DIR:-$here/../build/test-plugins}"
extra_out="${DANM_EXTRA_PLUGIN_DIR:-$here/../build/extra-plugins}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/danm-guests-target}"
cd "$here"
cargo build --release --target wasm32-wasip2
rel="$CARGO_TARGET_DIR/wasm32-wasip2/release"
mkdir -p "$out" "$test_out"
for p in ipvlan macvlan sriov bridge rules; do
    cp "$rel/danm_guest_$p.wasm" "$out/$p.wasm.tmp" && mv "$out/$p.wasm.tmp" "$out/$p.wasm"
done
for p in trap spin hog flood oldwit badjson dupe clock; do
    cp "$rel/danm_guest_test_$p.wasm" "$test_out/$p.wasm.tmp" && mv "$test_out/$p.wasm.tmp" "$test_out/$p.wasm"
done
(cd template && cargo build --release --target wasm32-wasip2)
mkdir -p "$extra_out"
cp "$rel/danm_backend_host_device.wasm" "$extra_out/host-device.wasm.tmp" &&
    mv "$extra_out/host-device.wasm.tmp" "$extra_out/host-device.wasm"
ls -l "$out" "$test_out" "$extra_out"
