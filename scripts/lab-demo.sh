#!/usr/bin/env bash
# The main job: DANM's multi-domain service-discovery demo (docs/demo.md) on one machine.
# Everything is real except the cluster: the embedded lab API server, the danm webhook validating and completing the
# networks through the .wasm plugins, netwatcher creating the VxLAN host link, svcwatcher publishing EndpointSlices,
# and the `danm` CNI binary wiring pods (network namespaces) exactly as kubelet would invoke it.
#
# Substitutions for this kernel (no ipvlan, no 802.1q VLAN): the ipvlan networks are macvlan networks; "ens4" (vlan
# 300) is a veth `dl-ext`; "ens3" is a veth `dl-int` carrying the VxLAN 600 underlay; rt_tables 300/250/200 become
# 30/25/20 (the CRD bounds them to 0..255); the VxLAN-backed network sets mtu 1450 (macvlan defaults to DANM's 1500, more
# than the VxLAN parent carries); management is a `bridge` network handled by bridge.wasm alone.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "lab-demo: needs root (network namespaces, links)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$HOME/.cache/danm-target}/debug
plugins=${DANM_PLUGIN_DIR:-$root/build/plugins}
work=$(mktemp -d /tmp/danm-lab-demo.XXXXXX)
port=${DANM_LAB_PORT:-16443}
whport=${DANM_WEBHOOK_PORT:-18443}
export KUBECONFIG=$work/kubeconfig
pids=()
pods=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
lab_pod() { "$bin/danm-lab" pod "$@" --kubeconfig "$KUBECONFIG" --cni-conf-dir "$work/net.d" \
    --cni-path "$bin:/usr/lib/cni" --state-dir "$work/pods"; }

cleanup() {
    set +e
    say "cleaning up"
    for p in "${pods[@]}"; do lab_pod del "${p#*/}" -n "${p%%/*}" >/dev/null 2>&1; done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    for l in dl-ext dl-int vx_internal; do ip link del "$l" 2>/dev/null; done
    ip link del danm-mgmt 2>/dev/null
    echo "logs kept in $work"
}
trap cleanup EXIT

for b in danm fakeipam danm-lab danm-webhook netwatcher svcwatcher kubectl-danm; do
    [ -x "$bin/$b" ] || { echo "lab-demo: $bin/$b missing; run 'make lab'" >&2; exit 1; }
done
ls "$plugins"/*.wasm >/dev/null 2>&1 || { echo "lab-demo: no plugins in $plugins; run 'make guests'" >&2; exit 1; }

say "host NICs: dl-ext (external L2) and dl-int (VxLAN underlay 10.99.0.1/24)"
for l in dl-ext dl-int; do ip link del "$l" 2>/dev/null || true; ip link add "$l" type veth peer name "$l-p"; done
ip addr add 10.99.0.1/24 dev dl-int
for l in dl-ext dl-ext-p dl-int dl-int-p; do ip link set "$l" up; done

say "lab API server on 127.0.0.1:$port"
"$bin/danm-lab" serve --port "$port" --kubeconfig-out "$KUBECONFIG" --apply "$root/deploy/crds" \
    >"$work/lab.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do kubectl get ns >/dev/null 2>&1 && break; sleep 0.1; done
kubectl get crds

say "danm webhook (TLS on 127.0.0.1:$whport) validating through $(ls "$plugins" | tr '\n' ' ')"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=danm-lab-ca" 2>/dev/null
openssl req "${ec[@]}" -keyout "$work/key.pem" -out "$work/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
    -extfile "$work/server.ext" -out "$work/cert.pem" 2>/dev/null
"$bin/danm-webhook" --plugin-dir "$plugins" --plugin-cache-dir "$work/wasm-cache" \
    --tls-cert-bundle "$work/cert.pem" --tls-private-key-file "$work/key.pem" --bind-address 127.0.0.1 \
    --bind-port "$whport" --kubeconfig "$KUBECONFIG" >"$work/webhook.log" 2>&1 & pids+=($!)
ca=$(base64 -w0 <"$work/ca.pem")
mutating() { # validation and completion of networks and TenantConfigs: one mutating webhook, as DANM deploys it
    cat <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: danm-webhook}
webhooks:
- name: netvalidation.danm.k8s.io
  clientConfig: {url: "https://127.0.0.1:$whport/netvalidation", caBundle: "$ca"}
  rules: [{apiGroups: ["danm.k8s.io"], apiVersions: ["v1"], operations: ["CREATE","UPDATE"], resources: ["danmnets","tenantnetworks","clusternetworks"]}]
  admissionReviewVersions: ["v1"]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
- name: confvalidation.danm.k8s.io
  clientConfig: {url: "https://127.0.0.1:$whport/confvalidation", caBundle: "$ca"}
  rules: [{apiGroups: ["danm.k8s.io"], apiVersions: ["v1"], operations: ["CREATE","UPDATE"], resources: ["tenantconfigs"]}]
  admissionReviewVersions: ["v1"]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
YAML
}
validating() { # the delete guard
    cat <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: danm-webhook}
webhooks:
- name: netdeletion.danm.k8s.io
  clientConfig: {url: "https://127.0.0.1:$whport/netdeletion", caBundle: "$ca"}
  rules: [{apiGroups: ["danm.k8s.io"], apiVersions: ["v1"], operations: ["DELETE"], resources: ["danmnets","tenantnetworks","clusternetworks"]}]
  admissionReviewVersions: ["v1"]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
YAML
}
for _ in $(seq 300); do curl -sfk "https://127.0.0.1:$whport/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sfk "https://127.0.0.1:$whport/readyz" >/dev/null || { echo "lab-demo: the webhook did not get ready:"; tail "$work/webhook.log"; exit 1; }
mutating | kubectl apply -f -
validating | kubectl apply -f -

say "netwatcher and svcwatcher"
"$bin/netwatcher" --kubeconfig "$KUBECONFIG" --metrics-addr 127.0.0.1:19471 >"$work/netwatcher.log" 2>&1 & pids+=($!)
"$bin/svcwatcher" --kubeconfig "$KUBECONFIG" --identity lab-demo --metrics-addr 127.0.0.1:19472 >"$work/svcwatcher.log" 2>&1 & pids+=($!)

say "the webhook refuses a broken network (routes without a cidr, gateway outside it)"
cat <<YAML | kubectl apply -f - || true
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: broken, namespace: default}
spec: {NetworkID: broken, Options: {routes: {"10.1.0.0/24": "10.2.0.1"}}}
YAML

say "namespaces and networks (the webhook fills in pools and allocation bitmaps)"
kubectl apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: example-vnf, labels: {name: example-vnf}}
---
apiVersion: v1
kind: Namespace
metadata: {name: external-client, labels: {name: external-client}}
---
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: external, namespace: external-client}
spec: {NetworkID: external, NetworkType: macvlan, Options: {host_device: dl-ext, container_prefix: eth0, rt_tables: 30,
       cidr: 10.100.20.0/24, allocation_pool: {start: 10.100.20.50, end: 10.100.20.60}}}
---
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: external, namespace: example-vnf}
spec: {NetworkID: external, NetworkType: macvlan, Options: {host_device: dl-ext, container_prefix: ext, rt_tables: 25,
       cidr: 10.100.20.0/24, allocation_pool: {start: 10.100.20.10, end: 10.100.20.30}}}
---
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: internal, namespace: example-vnf}
spec: {NetworkID: internal, NetworkType: macvlan, Options: {host_device: dl-int, container_prefix: int, rt_tables: 20,
       vxlan: 600, mtu: 1450, cidr: 10.240.1.0/24, allocation_pool: {start: 10.240.1.100, end: 10.240.1.200}}}
---
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: management, namespace: example-vnf}
spec: {NetworkID: management, NetworkType: bridge, Options: {host_device: danm-mgmt, cidr: 10.250.0.0/24}}
YAML
kubectl get danmnets -A
kubectl get danmnet internal -n example-vnf -o jsonpath='{.spec.Options.allocation_pool}{"\n"}'
kubectl get danmnet internal -n example-vnf -o jsonpath='IPAM mode: {.metadata.annotations.danm\.k8s\.io/ipam-mode}, bitmap: "{.spec.Options.alloc}"{"\n"}'

say "netwatcher made the VxLAN host link for 'internal'"
for _ in $(seq 50); do ip link show vx_internal >/dev/null 2>&1 && break; sleep 0.1; done
ip -d link show vx_internal | sed -n '1,3p'

say "precompiling the plugins into the CNI's cache, as a node's install step does (danm's deadline covers loading)"
"$bin/danmctl" plugins check --plugin-dir "$plugins" --cache-dir "$work/wasm-cache-cni"

mkdir -p "$work/net.d" "$work/pods"
cat >"$work/net.d/00-danm.conf" <<JSON
{"cniVersion": "1.0.0", "name": "danm", "type": "danm", "kubeconfig": "$KUBECONFIG",
 "pluginDir": "$plugins", "cacheDir": "$work/wasm-cache-cni", "cniDir": "$work/net.d", "logFile": "$work/danm.log"}
JSON

say "services (headless, selectorless, danm selectors)"
kubectl apply -f - <<YAML
apiVersion: v1
kind: Service
metadata:
  name: vnf-internal-processor
  namespace: example-vnf
  annotations: {danm.k8s.io/selector: '{"app":"internal-processor"}', danm.k8s.io/network: internal}
spec: {clusterIP: None, ports: [{name: zeromq, port: 5555, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata:
  name: vnf-internal-lb
  namespace: example-vnf
  annotations: {danm.k8s.io/selector: '{"app":"loadbalancer"}', danm.k8s.io/network: internal}
spec: {clusterIP: None, ports: [{name: zeromq, port: 5555, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata:
  name: vnf-external-svc
  namespace: example-vnf
  annotations: {danm.k8s.io/selector: '{"vnf-type":"example-vnf"}', danm.k8s.io/network: external}
spec: {clusterIP: None, ports: [{name: diameter, port: 3868, protocol: TCP}]}
YAML

say "pods: danm runs as kubelet would run it, all interfaces of a pod in parallel"
add_pod() { # ns name annotation labels...
    local ns=$1 name=$2 ann=$3; shift 3
    local args=()
    for l in "$@"; do args+=(-l "$l"); done
    lab_pod add "$name" -n "$ns" -a "danm.k8s.io/interfaces=$ann" "${args[@]}" >"$work/pods-$ns-$name.json"
    pods+=("$ns/$name")
    printf '%-34s' "$ns/$name"
    ip -n "$ns.$name" -br -4 addr show | awk '$1 != "lo" {printf " %s %s", $1, $3}'; echo
}
add_pod external-client external-client '[{"network":"external","ip":"dynamic"}]' app=external-client
for i in 1 2; do
    add_pod example-vnf "loadbalancer-$i" \
        '[{"network":"management","ip":"dynamic"},{"network":"external","ip":"dynamic","proutes":{"10.100.30.0/24":"10.100.20.1"}},{"network":"internal","ip":"dynamic"}]' \
        app=loadbalancer vnf-type=example-vnf
done
for i in 1 2 3 4 5 6; do
    add_pod example-vnf "internal-processor-$i" '[{"network":"management","ip":"dynamic"},{"network":"internal","ip":"dynamic"}]' \
        app=internal-processor
done
for p in "${pods[@]}"; do lab_pod ready "${p#*/}" -n "${p%%/*}" >/dev/null; done

say "a Multus user's pod: the NPWG annotation k8s.v1.cni.cncf.io/networks selects a NetworkAttachmentDefinition"
kubectl apply -f - <<EOF
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: macvlan-conf, namespace: example-vnf}
spec:
  config: '{"cniVersion": "1.0.0", "name": "macvlan-conf", "type": "macvlan", "master": "dl-ext", "mode": "bridge",
    "ipam": {"type": "host-local", "subnet": "10.100.40.0/24", "dataDir": "$work/host-local"}}'
EOF
lab_pod add multus-pod -n example-vnf -a 'danm.k8s.io/interfaces=[{"network":"management","ip":"dynamic"}]' \
    -a 'k8s.v1.cni.cncf.io/networks=[{"name":"macvlan-conf","interface":"net1","ips":["10.100.40.7/24"]}]' \
    >"$work/pods-example-vnf-multus-pod.json"
pods+=("example-vnf/multus-pod")
printf '%-34s' "example-vnf/multus-pod"
ip -n example-vnf.multus-pod -br -4 addr show | awk '$1 != "lo" {printf " %s %s", $1, $3}'; echo
kubectl get pod multus-pod -n example-vnf -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}{"\n"}'

say "the address blocks the pods' addresses came from (blocks IPAM: one object per /26 a node holds, an owner per address)"
kubectl get danmipblocks
kubectl get danmipblocks -o jsonpath='{range .items[*]}{.spec.cidr}{" on "}{.spec.node}{": "}{.spec.owners}{"\n"}{end}' | head -3

say "DanmEps (one per pod interface) and the pods' network-status annotation"
kubectl get danmeps -n example-vnf
kubectl get pod loadbalancer-1 -n example-vnf -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}{"\n"}'

slices() {
    sleep 1
    kubectl get endpointslices -n example-vnf -o json | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin)["items"], key=lambda s: s["metadata"]["name"]):
    svc = s["metadata"].get("labels", {}).get("kubernetes.io/service-name", "?")
    eps = [(e["addresses"][0], e.get("conditions", {}).get("ready")) for e in s.get("endpoints") or []]
    family = s["addressType"]
    print(f"  {svc:24} {family:5} " + " ".join(a + ("" if r else "(unready)") for a, r in sorted(eps)))'
}
say "EndpointSlices: each service lists exactly its pods' addresses on its network"
slices

say "the operator's view: kubectl danm (the kubectl-danm plugin on PATH)"
PATH="$bin:$PATH" kubectl danm networks -A
PATH="$bin:$PATH" kubectl danm pod multus-pod -n example-vnf

say "traffic: the client reaches the loadbalancers' external addresses, not the VNF's internal network"
lb_ext=$(ip -n example-vnf.loadbalancer-1 -br -4 addr show ext1 | awk '{print $3}' | cut -d/ -f1)
lb_int=$(ip -n example-vnf.loadbalancer-1 -br -4 addr show int2 | awk '{print $3}' | cut -d/ -f1)
ip netns exec external-client.external-client ping -c 2 -W 1 "$lb_ext"
if ip netns exec external-client.external-client ping -c 1 -W 1 "$lb_int" >/dev/null 2>&1; then
    echo "UNEXPECTED: the client reached the internal network"; exit 1
else echo "client -> $lb_int (internal): unreachable, as intended"; fi
proc_int=$(ip -n example-vnf.internal-processor-1 -br -4 addr show int1 | awk '{print $3}' | cut -d/ -f1)
echo "loadbalancer-1 -> internal-processor-1 over the VxLAN-backed internal network:"
ip netns exec example-vnf.loadbalancer-1 ping -c 2 -W 1 "$proc_int"
echo "policy routing of ext1 in loadbalancer-1 (proutes into the network's rt_tables 25):"
ip -n example-vnf.loadbalancer-1 rule | grep 'lookup 25'
ip -n example-vnf.loadbalancer-1 route show table 25

say "readiness: internal-processor-1 turns NotReady, its address moves out of the ready set"
lab_pod ready internal-processor-1 -n example-vnf --ready false >/dev/null
slices

say "deleting a pod releases its addresses and DanmEps (CNI DEL)"
lab_pod del internal-processor-6 -n example-vnf
pods=("${pods[@]/example-vnf\/internal-processor-6}")
slices
kubectl get danmeps -n example-vnf --no-headers | wc -l | xargs echo "DanmEps left in example-vnf:"

say "the webhook refuses to delete a network that pods still use"
kubectl delete danmnet internal -n example-vnf || true

say "demo finished"
