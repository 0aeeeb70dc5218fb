#!/bin/sh
# Installs danm on a node; run by the danm-cni DaemonSet (deploy/cni/daemonset.yaml) with the host's directories
# mounted under /host, and by `host/cni/tests/install.rs` against temporary directories.
#
#  1. copies the `danm` and `fakeipam` binaries into the CNI bin directory and the plugins (*.wasm) into
#     <danm dir>/plugins (each file by atomic rename; plugins an earlier install shipped and this image no longer
#     does are removed, plugins dropped in by hand are kept);
#  2. precompiles the plugins into <danm dir>/cache with `danmctl plugins check` — danm's deadline covers plugin
#     loading, so no pod's ADD should pay the compilation;
#  3. copies the service account's CA and token to <danm dir> and writes a kubeconfig that names them (danm re-reads
#     the token file on every call, so rotation only needs the copy refreshed: see DANM_TOKEN_REFRESH);
#  4. writes the CNI config list (DANM_CONF_NAME, default 00-danm.conflist; static delegate configs go to
#     <danm dir>/net.d, the `cniDir`) last, so the runtime never sees danm before it can
#     work.
# With DANM_TOKEN_REFRESH=<seconds> it then keeps refreshing the token copy.
set -eu

src_bin=${DANM_SRC_BIN:-/usr/local/bin}
src_plugins=${DANM_SRC_PLUGINS:-/usr/share/danm/plugins}
cni_bin=${CNI_BIN_DIR:-/host/opt/cni/bin}
cni_conf=${CNI_CONF_DIR:-/host/etc/cni/net.d}
danm_dir=${DANM_DIR:-/host/etc/danm}
# The same directory as the host (and so the danm binary kubelet runs) sees it.
host_danm_dir=${DANM_HOST_DIR:-/etc/danm}
sa=${DANM_SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
server=${DANM_API_SERVER:-https://${KUBERNETES_SERVICE_HOST:?}:${KUBERNETES_SERVICE_PORT:?}}
conf_name=${DANM_CONF_NAME:-00-danm.conflist}
timeout=${DANM_TIMEOUT_SECONDS:-10}
log_level=${DANM_LOG_LEVEL:-info}

say() { echo "danm-install: $*"; }
put() { # put SRC DST MODE: copy by atomic rename
    cp "$1" "$2.tmp.$$" && chmod "$3" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

mkdir -p "$cni_bin" "$cni_conf" "$danm_dir/plugins" "$danm_dir/cache"
chmod 700 "$danm_dir" "$danm_dir/cache"

for b in danm fakeipam; do
    put "$src_bin/$b" "$cni_bin/$b" 755
done
say "binaries in $cni_bin"

# The plugins this image ships are listed in <danm dir>/shipped-plugins; one an earlier install shipped and this image
# no longer does is removed. Plugins dropped into the directory by hand (a backend added without a new image) are
# never in that list, so they stay.
shipped="$danm_dir/shipped-plugins"
for p in "$src_plugins"/*.wasm; do
    [ -e "$p" ] || { say "no plugins in $src_plugins"; exit 1; }
    put "$p" "$danm_dir/plugins/$(basename "$p")" 644
done
if [ -f "$shipped" ]; then
    while read -r name; do
        case "$name" in *.wasm) ;; *) continue ;; esac
        if [ ! -e "$src_plugins/$name" ] && [ -e "$danm_dir/plugins/$name" ]; then
            rm -f "$danm_dir/plugins/$name"
            say "removed $name (shipped before, no longer shipped)"
        fi
    done <"$shipped"
fi
( cd "$src_plugins" && for p in *.wasm; do echo "$p"; done ) >"$shipped.tmp.$$"
mv -f "$shipped.tmp.$$" "$shipped"
"$src_bin/danmctl" plugins check --plugin-dir "$danm_dir/plugins" --cache-dir "$danm_dir/cache"
say "plugins in $danm_dir/plugins, precompiled into $danm_dir/cache"

refresh_token() {
    if [ -s "$sa/token" ]; then
        put "$sa/token" "$danm_dir/token" 600
    fi
}
refresh_token
ca_line=""
if [ -s "$sa/ca.crt" ]; then
    put "$sa/ca.crt" "$danm_dir/ca.crt" 644
    ca_line="    certificate-authority: $host_danm_dir/ca.crt"
fi
user_line="  user: {}"
if [ -s "$danm_dir/token" ]; then
    user_line="  user:
    tokenFile: $host_danm_dir/token"
fi
cat >"$danm_dir/kubeconfig.tmp.$$" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
$ca_line
users:
- name: danm
$user_line
contexts:
- name: danm
  context: {cluster: local, user: danm}
current-context: danm
KUBECONFIG
chmod 600 "$danm_dir/kubeconfig.tmp.$$"
mv -f "$danm_dir/kubeconfig.tmp.$$" "$danm_dir/kubeconfig"

cat >"$cni_conf/.$conf_name.tmp" <<CONF
{
  "cniVersion": "1.0.0",
  "cniVersions": ["1.0.0", "1.1.0"],
  "name": "danm",
  "plugins": [{
    "type": "danm",
    "kubeconfig": "$host_danm_dir/kubeconfig",
    "pluginDir": "$host_danm_dir/plugins",
    "cacheDir": "$host_danm_dir/cache",
    "cniDir": "$host_danm_dir/net.d",
    "timeoutSeconds": $timeout,
    "logLevel": "$log_level"
  }]
}
CONF
mkdir -p "$danm_dir/net.d"
mv -f "$cni_conf/.$conf_name.tmp" "$cni_conf/$conf_name"
say "CNI config $cni_conf/$conf_name"

if [ -n "${DANM_TOKEN_REFRESH:-}" ]; then
    while sleep "$DANM_TOKEN_REFRESH"; do refresh_token; done
fi
