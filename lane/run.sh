#!/usr/bin/env bash
# The kernel lane: builds the tests of lane/tests.list, packs them with busybox, the kernel modules the build
# machines lack (ipvlan, 802.1q, dummy, ...) and lane/init.sh into an initramfs, boots Debian's kernel under
# qemu (TCG) and exits with the result the VM prints on its serial console. Fails loudly (non-zero) when qemu,
# the kernel or the modules are missing, the VM does not boot, or the result marker never comes.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/danm-target), LANE_OUT (work directory, default
# $CARGO_TARGET_DIR/kernel-lane), LANE_TIMEOUT (seconds for the VM, default 480), LANE_BOOT_TIMEOUT (seconds until
# the VM's first marker, default 120), LANE_MEM (MiB, default 1024), LANE_SMP (default 2), LANE_KERNEL (a version
# under /lib/modules, default the newest with ipvlan.ko), LANE_TESTS (list file, default lane/tests.list),
# LANE_NO_INSTALL=1 (never call apt-get), LANE_FILTER (extra libtest args added to every test entry), LANE_STRIP=0
# (keep debug info in the packed executables), LANE_APPEND (kernel arguments instead of `quiet`), LANE_INIT (another
# init script, to check the harness's own failure paths), LANE_PVH=0 (boot the compressed bzImage instead of the
# unpacked ELF).
set -euo pipefail

LANE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$LANE_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/danm-target}"
LANE_OUT="${LANE_OUT:-$CARGO_TARGET_DIR/kernel-lane}"
LANE_TIMEOUT="${LANE_TIMEOUT:-480}"
LANE_BOOT_TIMEOUT="${LANE_BOOT_TIMEOUT:-120}"
LANE_MEM="${LANE_MEM:-1024}"
LANE_SMP="${LANE_SMP:-2}"
LANE_TESTS="${LANE_TESTS:-$LANE_DIR/tests.list}"
LANE_FILTER="${LANE_FILTER:-}"
CARGO="${CARGO:-cargo}"

# Modules to load in the VM (with their dependencies, resolved by modinfo; builtins are skipped). LANE_MODULES
# replaces the list (e.g. without ipvlan, to see the lane fail instead of skipping).
read -r -a MODULES <<<"${LANE_MODULES:-dummy ipvlan 8021q macvlan veth vxlan bridge}"

lane_start=$(date +%s.%N)
say() { echo "kernel-lane: $*"; }
die() {
    echo "kernel-lane: FAILED: $*" >&2
    exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# --- 1. packages -------------------------------------------------------------------------------------------------
install_packages() {
    local need=() pkg
    for pkg in qemu-system-x86 linux-image-amd64 busybox-static jq cpio kmod; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    [ "${LANE_NO_INSTALL:-0}" = 1 ] && die "missing packages ${need[*]} (LANE_NO_INSTALL=1)"
    [ "$(id -u)" -eq 0 ] || die "missing packages ${need[*]}; run as root to install them"
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >"$LANE_OUT/apt.log" 2>&1 ||
        die "apt-get install ${need[*]} failed (see $LANE_OUT/apt.log)"
}

mkdir -p "$LANE_OUT"
install_packages
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found"
command -v jq >/dev/null || die "jq not found"
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) not found"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is not statically linked (install busybox-static)"

# --- 2. kernel and modules ---------------------------------------------------------------------------------------
pick_kernel() {
    if [ -n "${LANE_KERNEL:-}" ]; then
        echo "$LANE_KERNEL"
        return
    fi
    local ver
    for ver in $(ls -1 /lib/modules 2>/dev/null | sort -rV); do
        if [ -f "/boot/vmlinuz-$ver" ] && modinfo -k "$ver" -F filename ipvlan >/dev/null 2>&1; then
            echo "$ver"
            return
        fi
    done
}
KVER="$(pick_kernel)"
[ -n "$KVER" ] || die "no kernel under /boot with ipvlan under /lib/modules (install linux-image-amd64)"
VMLINUZ="/boot/vmlinuz-$KVER"
[ -r "$VMLINUZ" ] || die "$VMLINUZ is missing or unreadable"

# The bzImage decompresses itself under emulation (xz: ~7 s of TCG time). Kernels with CONFIG_PVH boot from the
# decompressed ELF directly, so unpack it once per kernel version into $LANE_OUT.
unpack_vmlinux() {
    local out="$LANE_OUT/vmlinux-$KVER" magic tool off
    grep -q '^CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null || return 1
    if [ ! -s "$out" ] || [ "$out" -ot "$VMLINUZ" ]; then
        for magic in xz zstd gzip; do
            case "$magic" in
                xz) off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$VMLINUZ" | head -n 1 | cut -d: -f1 || true); tool=(xz -dc) ;;
                zstd) off=$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$VMLINUZ" | head -n 1 | cut -d: -f1 || true); tool=(zstd -dc) ;;
                gzip) off=$(LC_ALL=C grep -abo $'\x1f\x8b\x08' "$VMLINUZ" | head -n 1 | cut -d: -f1 || true); tool=(gzip -dc) ;;
            esac
            [ -n "$off" ] && command -v "${tool[0]}" >/dev/null || continue
            # The compressed stream is followed by more of the bzImage: the tool complains, the ELF is complete.
            tail -c +"$((off + 1))" "$VMLINUZ" | "${tool[@]}" >"$out.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                mv "$out.tmp" "$out"
                break
            fi
        done
        rm -f "$out.tmp"
    fi
    [ -s "$out" ] && echo "$out"
}
BOOT_KERNEL="$VMLINUZ"
if [ "${LANE_PVH:-1}" = 1 ] && vmlinux="$(unpack_vmlinux)"; then
    BOOT_KERNEL="$vmlinux"
fi

declare -A SEEN=()
ORDER=()
# Appends `$1` and its dependencies (first) to ORDER, as module file paths.
add_module() {
    local name="$1" file dep deps
    [ -n "${SEEN[$name]:-}" ] && return 0
    SEEN[$name]=1
    file="$(modinfo -k "$KVER" -F filename "$name" 2>/dev/null)" || die "kernel $KVER has no module $name"
    case "$file" in
        "(builtin)" | "") return 0 ;;
    esac
    deps="$(modinfo -k "$KVER" -F depends "$name")"
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    ORDER+=("$file")
}
for m in "${MODULES[@]}"; do add_module "$m"; done

# --- 3. build ----------------------------------------------------------------------------------------------------
ROOT="$LANE_OUT/rootfs"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,run,lane,usr/local/bin,root}
: >"$ROOT/lane/run.list"

# Copies file $1 to the same absolute path under $ROOT (following symlinks), with the shared libraries it needs.
declare -A COPIED=()
copy_abs() {
    local src="$1" dst="$ROOT$1"
    [ -n "${COPIED[$src]:-}" ] && return 0
    COPIED[$src]=1
    mkdir -p "$(dirname "$dst")"
    cp -L "$src" "$dst"
}
copy_with_libs() {
    local exe="$1" lib
    copy_abs "$exe"
    # Debug line tables and symbols are most of a debug build (danm: 96 of 165 MB) and the guest loads every byte
    # under emulation; panics still name file:line without them. LANE_STRIP=0 keeps them (for backtraces with
    # RUST_BACKTRACE in the VM).
    if [ "${2:-}" != nostrip ] && [ "${LANE_STRIP:-1}" = 1 ] && command -v strip >/dev/null; then
        strip --strip-all "$ROOT$exe"
    fi
    file_is_static "$exe" && return 0
    # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
    while read -r lib; do
        [ -n "$lib" ] && copy_abs "$lib"
    done < <(ldd "$exe" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}')
}

build_start=$(date +%s.%N)
n_tests=0
cd "$REPO"
while read -r kind pkg target args; do
    case "$kind" in
        "" | \#*) continue ;;
        test)
            [ -n "$pkg" ] && [ -n "$target" ] || die "bad entry in $LANE_TESTS: test needs <package> <target>"
            if [ "$target" = lib ]; then sel=(--lib); else sel=(--test "$target"); fi
            say "building tests: $pkg ${sel[*]}"
            json="$("$CARGO" test -p "$pkg" "${sel[@]}" --no-run --message-format=json-render-diagnostics)" ||
                die "cargo test -p $pkg ${sel[*]} --no-run failed"
            line="$(jq -c --arg t "$target" 'select(.reason == "compiler-artifact" and .executable != null
                    and (if $t == "lib" then (.target.kind | index("lib")) != null else .target.name == $t end))' \
                <<<"$json" | tail -n 1)"
            [ -n "$line" ] || die "no test executable for $pkg $target in cargo's output"
            exe="$(jq -r .executable <<<"$line")"
            cwd="$(dirname "$(jq -r .manifest_path <<<"$line")")"
            copy_with_libs "$exe"
            echo "$pkg/$target|$cwd|$exe|$args $LANE_FILTER" >>"$ROOT/lane/run.list"
            n_tests=$((n_tests + 1))
            ;;
        bin)
            [ -n "$pkg" ] && [ -n "$target" ] || die "bad entry in $LANE_TESTS: bin needs <package> <binary>"
            say "building binary: $pkg $target"
            json="$("$CARGO" build -p "$pkg" --bin "$target" --message-format=json-render-diagnostics)" ||
                die "cargo build -p $pkg --bin $target failed"
            exe="$(jq -r --arg t "$target" 'select(.reason == "compiler-artifact" and .executable != null
                    and .target.name == $t) | .executable' <<<"$json" | tail -n 1)"
            [ -n "$exe" ] || die "no executable for $pkg --bin $target in cargo's output"
            copy_with_libs "$exe"
            ln -sf "$exe" "$ROOT/usr/local/bin/$target"
            ;;
        exe)
            src="$pkg"
            [ -x "$src" ] || die "exe entry $pkg: not an executable (install the package that has it)"
            copy_with_libs "$src" nostrip
            # A system tool (iproute2's ip) must win over busybox's applet of the same name.
            case "$(dirname "$src")" in
                /bin | /sbin | /usr/bin | /usr/sbin) ln -sf "$src" "$ROOT/usr/local/bin/$(basename "$src")" ;;
            esac
            ;;
        path)
            # A path of the checkout goes to /lane/files/<path> in the VM, where no mount hides it (the VM mounts a
            # tmpfs over /tmp, where a checkout may live); init.sh points the tests at it. Absolute paths keep theirs.
            src="$pkg"
            case "$src" in
                /*) dest="$ROOT$src" ;;
                *) src="$REPO/$pkg"; dest="$ROOT/lane/files/$pkg" ;;
            esac
            [ -e "$src" ] || die "path entry $pkg: $src does not exist (build/plugins comes from make guests)"
            mkdir -p "$(dirname "$dest")"
            cp -rL "$src" "$dest"
            ;;
        *) die "bad entry kind '$kind' in $LANE_TESTS" ;;
    esac
done <"$LANE_TESTS"
[ "$n_tests" -gt 0 ] || die "no test entries in $LANE_TESTS"
build_s="$(elapsed "$build_start")"

# --- 4. initramfs ------------------------------------------------------------------------------------------------
pack_start=$(date +%s.%N)
cp /bin/busybox "$ROOT/bin/busybox"
install -m 0755 "${LANE_INIT:-$LANE_DIR/init.sh}" "$ROOT/init"
: >"$ROOT/lane/modules.list"
for file in "${ORDER[@]}"; do
    copy_abs "$file"
    echo "$file" >>"$ROOT/lane/modules.list"
done
if [ "$(id -u)" -eq 0 ]; then
    mknod -m 600 "$ROOT/dev/console" c 5 1
    mknod -m 666 "$ROOT/dev/null" c 1 3
fi
INITRD="$LANE_OUT/initramfs.cpio"
# Uncompressed: the guest unpacks it without emulated decompression, and packing takes no CPU.
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet) >"$INITRD"
pack_s="$(elapsed "$pack_start")"
say "kernel $KVER (booting $BOOT_KERNEL); modules: $(for f in "${ORDER[@]}"; do basename "$f" .ko; done | tr '\n' ' ')"
say "initramfs $INITRD: $(du -m "$INITRD" | cut -f1) MiB, $n_tests test executables (build ${build_s}s, pack ${pack_s}s)"

# --- 5. boot -----------------------------------------------------------------------------------------------------
SERIAL="$LANE_OUT/serial.log"
: >"$SERIAL"
qemu_args=(
    -accel tcg -cpu max -m "$LANE_MEM" -smp "$LANE_SMP"
    -display none -monitor none -serial stdio -nic none -no-reboot
    -kernel "$BOOT_KERNEL" -initrd "$INITRD"
    -append "console=ttyS0 panic=-1 oops=panic ${LANE_APPEND-quiet}"
)
say "booting: qemu-system-x86_64 ${qemu_args[*]}"
vm_start=$(date +%s.%N)
boot_s=""
result=""
declare -A TEST_SEEN=()
# The VM's serial output is streamed to stdout and $SERIAL; the markers are read as they come.
exec 3< <(timeout --kill-after=10 "$LANE_TIMEOUT" qemu-system-x86_64 "${qemu_args[@]}" </dev/null 2>&1)
qemu_pid=$!
while true; do
    if [ -z "$boot_s" ]; then
        left=$(awk -v s="$vm_start" -v now="$(date +%s.%N)" -v t="$LANE_BOOT_TIMEOUT" 'BEGIN{printf "%d", t-(now-s)}')
        if [ "$left" -le 0 ]; then
            kill "$qemu_pid" 2>/dev/null || true
            die "the VM did not boot within ${LANE_BOOT_TIMEOUT}s (no DANM-LANE-BOOTED line; serial log: $SERIAL)"
        fi
        IFS= read -r -t "$left" line <&3 || {
            rc=$?
            [ $rc -gt 128 ] && continue
            break
        }
    else
        IFS= read -r line <&3 || break
    fi
    line="${line%$'\r'}"
    printf '%s\n' "$line" >>"$SERIAL"
    printf '%s\n' "$line"
    case "$line" in
        DANM-LANE-BOOTED*) [ -n "$boot_s" ] || boot_s="$(elapsed "$vm_start")" ;;
        DANM-LANE-TEST\ *) TEST_SEEN["${line#DANM-LANE-TEST }"]=1 ;;
        DANM-LANE-RESULT*) result="$line" ;;
    esac
done
qemu_rc=0
wait "$qemu_pid" 2>/dev/null || qemu_rc=$?
exec 3<&-
vm_s="$(elapsed "$vm_start")"

say "boot ${boot_s:-?}s (to the first init line), VM total ${vm_s}s, lane total $(elapsed "$lane_start")s"
[ -n "$boot_s" ] || die "the VM did not boot (qemu exit code $qemu_rc; serial log: $SERIAL)"
if [ -z "$result" ]; then
    [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ] && die "timeout after ${LANE_TIMEOUT}s without a DANM-LANE-RESULT line (serial log: $SERIAL)"
    die "the VM stopped without a DANM-LANE-RESULT line (qemu exit code $qemu_rc; serial log: $SERIAL)"
fi
[ "${#TEST_SEEN[@]}" -eq "$n_tests" ] ||
    die "$n_tests test executables packed but ${#TEST_SEEN[@]} reported (serial log: $SERIAL)"
vm_rc="$(sed -n 's/^DANM-LANE-RESULT rc=\([0-9]*\).*/\1/p' <<<"$result")"
[ "$vm_rc" = 0 ] || die "tests failed inside the VM: $result (serial log: $SERIAL)"
say "PASSED: $result"
