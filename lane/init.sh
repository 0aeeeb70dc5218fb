#!/bin/busybox sh
# PID 1 of the kernel-lane VM (packed as /init by lane/run.sh). Mounts the pseudo filesystems, loads the kernel
# modules listed in /lane/modules.list (dependency order), runs every test of /lane/run.list and prints one
# marker line per test and a final `DANM-LANE-RESULT rc=<n>` line, which the host parses; then powers off.
# Lines of /lane/run.list: `<name>|<cwd>|<executable>|<args>` (args split on spaces).

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /var
[ -e /var/run ] || ln -s /run /var/run

finish() {
    echo "DANM-LANE-RESULT rc=$1 $2"
    sync
    poweroff -f
    sleep 10
    exit "$1"
}

echo "DANM-LANE-BOOTED kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s cpus=$(nproc)"

failed_modules=""
while read -r module; do
    [ -n "$module" ] || continue
    if ! out=$(insmod "$module" 2>&1); then
        case "$out" in
            *"File exists"*) ;;
            *) echo "insmod $module: $out"; failed_modules="$failed_modules $(basename "$module")" ;;
        esac
    fi
done </lane/modules.list
[ -z "$failed_modules" ] || finish 90 "reason=insmod-failed:$failed_modules"
echo "DANM-LANE-MODULES $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

ip link set lo up
# DANM_TEST_PLUGIN_CACHE: one compiled-plugin cache for every danm run of the boot (host/cni/tests/common/node.rs),
# so each wasm plugin compiles once per boot (seconds under emulation) instead of once per test.
export DANM_KERNEL_LANE=1 HOME=/root TMPDIR=/tmp DANM_TEST_PLUGIN_CACHE=/tmp/danm-plugin-cache
# Fixtures of the checkout staged by run.sh (never at their host path, which a mount may hide).
[ -d /lane/files/build/plugins ] && export DANM_PLUGIN_DIR=/lane/files/build/plugins
[ -d /lane/files/build/test-plugins ] && export DANM_TEST_PLUGIN_DIR=/lane/files/build/test-plugins
mkdir -p /root

rc=0
passed=0
failed=0
while IFS='|' read -r name cwd exe args; do
    [ -n "$name" ] || continue
    mkdir -p "$cwd"
    echo "DANM-LANE-TEST-START $name"
    start=$(cut -d' ' -f1 /proc/uptime)
    # shellcheck disable=SC2086 # args are libtest words
    # The package directory, as cargo gives it to a test it runs (tests find their files from it at run time).
    (cd "$cwd" && CARGO_MANIFEST_DIR="$cwd" "$exe" --test-threads=1 $args) </dev/null
    test_rc=$?
    end=$(cut -d' ' -f1 /proc/uptime)
    echo "DANM-LANE-TEST $name rc=$test_rc seconds=$(awk "BEGIN{print $end-$start}")"
    if [ "$test_rc" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        rc=1
    fi
done </lane/run.list

finish "$rc" "passed=$passed failed=$failed"
