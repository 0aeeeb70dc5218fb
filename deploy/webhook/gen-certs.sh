#!/usr/bin/env bash
# Certificate path 2 (no cert-manager): creates a private CA and a serving certificate for the webhook Service with
# openssl, stores them in Secret kube-system/danm-webhook-certs (tls.crt, tls.key) and writes the CA into the
# caBundle of both webhook configurations. Re-run to rotate; the webhook reloads the mounted files by itself.
#
#   deploy/webhook/gen-certs.sh [--namespace kube-system] [--service danm-webhook-svc] [--days 365] [--out DIR] [--dry-run]
#
# --dry-run only writes the files into --out (default: a temporary directory) and prints the kubectl commands.
set -euo pipefail

ns=kube-system svc=danm-webhook-svc days=365 out="" dry=false
while [ $# -gt 0 ]; do
    case "$1" in
        --namespace) ns=$2; shift 2 ;;
        --service) svc=$2; shift 2 ;;
        --days) days=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --dry-run) dry=true; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
    -keyout ca.key -out ca.crt -subj "/CN=danm-webhook-ca" 2>/dev/null
cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:${svc},DNS:${svc}.${ns},DNS:${svc}.${ns}.svc,DNS:${svc}.${ns}.svc.cluster.local
EXT
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out server.csr \
    -subj "/CN=${svc}.${ns}.svc" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile server.ext -out tls.crt 2>/dev/null
ca_bundle=$(base64 -w0 < ca.crt)
echo "certificates in $out (CA: ca.crt, serving pair: tls.crt, tls.key)"

run() { if $dry; then echo "+ $*"; else "$@"; fi; }
secret=$(kubectl create secret tls danm-webhook-certs -n "$ns" --cert=tls.crt --key=tls.key --dry-run=client -o yaml)
if $dry; then echo "+ kubectl apply -f - <<< (Secret $ns/danm-webhook-certs)"; else echo "$secret" | kubectl apply -f -; fi
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
    n=$(kubectl get "$kind" danm-webhook-config -o jsonpath='{.webhooks[*].name}' 2>/dev/null | wc -w || true)
    [ "${n:-0}" -gt 0 ] || { $dry && n=1 || { echo "$kind danm-webhook-config not found; apply webhook.yaml first" >&2; continue; }; }
    patch="["
    for ((i = 0; i < n; i++)); do
        patch+="{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}"
        [ $i -lt $((n - 1)) ] && patch+=","
    done
    patch+="]"
    run kubectl patch "$kind" danm-webhook-config --type=json -p "$patch"
done
