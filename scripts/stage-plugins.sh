#!/usr/bin/env bash
# Copies the built guest components into the plugin directory (real backends and rules) and the test-plugin
# directory (guests that misbehave on purpose). Usage: stage-plugins.sh <wasm-out-dir> <plugin-dir> <test-plugin-dir>
set -euo pipefail
out=$1 plugins=$2 test_plugins=$3
mkdir -p "$plugins" "$test_plugins"
shopt -s nullglob
for f in "$out"/*.wasm; do
    name=$(basename "$f" .wasm)
    case "$name" in
        danm_guest_test_*|test_*) cp -f "$f" "$test_plugins/${name#*test_}.wasm" ;;
        *) cp -f "$f" "$plugins/$name.wasm" ;;
    esac
done
