#!/usr/bin/env bash
# Runs danm's fuzz targets with cargo-fuzz on the stable toolchain.
#
# Usage: fuzz/run.sh [--runs N | --seconds S] [TARGET...]   (default: every target, FUZZ_SECONDS or 20 s each)
#
# Stable rustc cannot build a sanitizer runtime (`-Zsanitizer` is nightly-only), so the targets are built with
# `--sanitizer none`: cargo-fuzz then passes only stable flags (`-Cpasses=sancov-module` and `-Cllvm-args` for
# libFuzzer's coverage counters and comparison tracing), and no RUSTC_BOOTSTRAP is needed. Memory errors would only
# come from unsafe code, which none of the fuzzed crates has; what libFuzzer finds here are panics (overflow checks
# are on through `--debug-assertions`), hangs and out-of-memory. The generated corpus and any crash input stay under
# $DANM_FUZZ_WORK (default ~/.cache/danm-fuzz-work), outside the checkout; the seeds in fuzz/seeds are committed.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${DANM_FUZZ_TARGET_DIR:-$HOME/.cache/danm-fuzz-target}"
export CARGO_INCREMENTAL=0
work="${DANM_FUZZ_WORK:-$HOME/.cache/danm-fuzz-work}"
limit=(-max_total_time="${FUZZ_SECONDS:-20}")
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) limit=(-runs="$2"); shift 2 ;;
        --seconds) limit=(-max_total_time="$2"); shift 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
flags=(--sanitizer none --release --debug-assertions)
cargo fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    echo "fuzz: $t (${limit[*]})"
    # -rss_limit_mb bounds memory per input (a decode that allocates per claimed length is a finding);
    # -timeout makes an input slower than 10 s a finding.
    cargo fuzz run "${flags[@]}" "$t" "$work/corpus/$t" "seeds/$t" -- \
        "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" 2>&1 | tee "$work/$t.log" | grep -E '^(#[0-9]+.*DONE|Done|stat::|==|SUMMARY|thread|.*panicked)' || true
    if grep -qE 'SUMMARY|panicked|deadly signal|ERROR: libFuzzer' "$work/$t.log"; then
        echo "fuzz: $t FAILED; the input is in $work/artifacts/$t/, the log in $work/$t.log" >&2
        exit 1
    fi
done
