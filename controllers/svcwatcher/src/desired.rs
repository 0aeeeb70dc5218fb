//! The pure core: the EndpointSlices (one per address family) and the legacy Endpoints a managed Service should
//! have, given the DanmEps and pods of its namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use danm_api::{DanmEp, NetworkKind};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::selection::Selection;

/// Label naming the Service of an EndpointSlice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller of an EndpointSlice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Label naming the controller of an Endpoints object.
pub const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Tells Kubernetes' EndpointSlice mirroring controller not to mirror our Endpoints (we write the slices).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// svcwatcher's manager name, the value of both managed-by labels.
pub const MANAGER: &str = "svcwatcher.danm.k8s.io";

/// Most endpoints the API server accepts in one EndpointSlice.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 1000;

/// Address families, in slice order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The EndpointSlice `addressType`.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
    fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// The name of the (first) slice of `service` for `family`; further slices get `-2`, `-3`, ... appended.
pub fn slice_name(service: &str, family: Family) -> String {
    format!("{service}-danm-{}", family.suffix())
}

/// The IP of a DanmEp address (`a.b.c.d/len`, a bare IP; `""`, `none` and `dynamic` mean none).
pub fn ep_ip(address: &str) -> Option<IpAddr> {
    let address = address.trim();
    if address.is_empty() || address.eq_ignore_ascii_case("none") || address.eq_ignore_ascii_case("dynamic") {
        return None;
    }
    address.split('/').next()?.parse().ok()
}

/// Whether the pod's `Ready` condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether `ep` belongs to `pod`: same namespace and name, and the same UID when both record one.
pub fn ep_of_pod(ep: &DanmEp, pod: &Pod) -> bool {
    ep.metadata.namespace == pod.metadata.namespace
        && ep.spec.pod == pod.metadata.name.as_deref().unwrap_or_default()
        && (ep.spec.pod_uid.is_empty()
            || pod
                .metadata
                .uid
                .as_deref()
                .is_none_or(|uid| uid == ep.spec.pod_uid))
}

/// Whether `ep` is on one of the selected networks (an empty `apiType` is a DanmNet, behaviour §1.3).
pub fn ep_on_network(sel: &Selection, ep: &DanmEp) -> bool {
    NetworkKind::from_api_type(&ep.spec.api_type)
        .is_ok_and(|kind| sel.selects_network(kind, &ep.spec.network_name))
}

/// One address of one selected pod.
#[derive(Clone, Debug)]
struct Member<'a> {
    ip: IpAddr,
    pod: &'a Pod,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// The desired objects of one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredEndpoints {
    pub slices: Vec<EndpointSlice>,
    pub endpoints: Endpoints,
}

fn owner(svc: &Service) -> Option<Vec<OwnerReference>> {
    let uid = svc.metadata.uid.clone()?;
    Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }])
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_owned()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The Service's ports as `(name, port, protocol)`; `targetPort` is ignored (behaviour §7).
fn ports(svc: &Service) -> Vec<(Option<String>, i32, String)> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p.name.clone().filter(|n| !n.is_empty()),
                        p.port,
                        p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The families the Service asks for (`spec.ipFamilies`, IPv4 when unset).
fn service_families(svc: &Service) -> BTreeSet<Family> {
    let fams: BTreeSet<Family> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .map(|fs| {
            fs.iter()
                .filter_map(|f| match f.as_str() {
                    "IPv4" => Some(Family::V4),
                    "IPv6" => Some(Family::V6),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if fams.is_empty() {
        BTreeSet::from([Family::V4])
    } else {
        fams
    }
}

/// The EndpointSlices and Endpoints `svc` (selecting `sel`) should have, from the DanmEps and pods of its
/// namespace (objects of other namespaces are ignored). Pods are matched by the labels they have now (DanmEp
/// labels are a copy that may lag), so a label change takes effect without waiting for the DanmEp label sync.
///
/// Slices: one per family the Service asks for or that has addresses, each endpoint one address with
/// ready (= Ready condition or published-unready, and not terminating), serving, terminating, hostname, nodeName
/// and a Pod targetRef. Endpoints: one subset (none when there is no address) with ready and not-ready addresses;
/// terminating pods are left out unless unready addresses are published (as Kubernetes' endpoints controller does).
pub fn desired_endpoints(
    svc: &Service,
    sel: &Selection,
    danmeps: &[&DanmEp],
    pods: &[&Pod],
) -> DesiredEndpoints {
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let pods_by_name: BTreeMap<&str, &Pod> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, *p)))
        .collect();

    let mut members: BTreeMap<(Family, IpAddr), Member<'_>> = BTreeMap::new();
    for ep in danmeps {
        if ep.metadata.namespace.as_deref() != Some(namespace.as_str()) || !ep_on_network(sel, ep) {
            continue;
        }
        let Some(pod) = pods_by_name.get(ep.spec.pod.as_str()).copied() else {
            continue;
        };
        if !ep_of_pod(ep, pod) || pod_finished(pod) || !sel.selects_labels(pod.metadata.labels.as_ref()) {
            continue;
        }
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let ready_now = pod_ready(pod);
        for address in [&ep.spec.interface.address, &ep.spec.interface.address_ipv6] {
            if let Some(ip) = ep_ip(address) {
                members.entry((Family::of(&ip), ip)).or_insert(Member {
                    ip,
                    pod,
                    ready: (ready_now || sel.publish_not_ready) && !terminating,
                    serving: ready_now || sel.publish_not_ready,
                    terminating,
                });
            }
        }
    }

    let ports = ports(svc);
    let owners = owner(svc);
    let mut families = service_families(svc);
    families.extend(members.keys().map(|(f, _)| *f));
    let slice_ports: Vec<EndpointPort> = ports
        .iter()
        .map(|(n, p, proto)| EndpointPort {
            name: n.clone(),
            port: Some(*p),
            protocol: Some(proto.clone()),
            app_protocol: None,
        })
        .collect();
    let mut slices = Vec::new();
    for family in families {
        let endpoints: Vec<Endpoint> = members
            .iter()
            .filter(|((f, _), _)| *f == family)
            .map(|(_, m)| Endpoint {
                addresses: vec![m.ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(m.ready),
                    serving: Some(m.serving),
                    terminating: Some(m.terminating),
                }),
                hostname: m.pod.spec.as_ref().and_then(|s| s.hostname.clone()),
                node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(target_ref(m.pod)),
                ..Endpoint::default()
            })
            .collect();
        // The API accepts at most MAX_ENDPOINTS_PER_SLICE endpoints per slice; more go into numbered slices.
        let chunks: Vec<Vec<Endpoint>> = if endpoints.is_empty() {
            vec![Vec::new()]
        } else {
            endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(<[Endpoint]>::to_vec)
                .collect()
        };
        for (i, chunk) in chunks.into_iter().enumerate() {
            let base = slice_name(&name, family);
            slices.push(EndpointSlice {
                address_type: family.address_type().to_owned(),
                metadata: ObjectMeta {
                    name: Some(if i == 0 { base } else { format!("{base}-{}", i + 1) }),
                    namespace: Some(namespace.clone()),
                    labels: Some(BTreeMap::from([
                        (SERVICE_NAME_LABEL.to_owned(), name.clone()),
                        (SLICE_MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
                    ])),
                    owner_references: owners.clone(),
                    ..ObjectMeta::default()
                },
                endpoints: chunk,
                ports: Some(slice_ports.clone()),
            });
        }
    }

    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for m in members.values() {
        if m.terminating && !sel.publish_not_ready {
            continue;
        }
        let address = EndpointAddress {
            ip: m.ip.to_string(),
            hostname: m.pod.spec.as_ref().and_then(|s| s.hostname.clone()),
            node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(m.pod)),
        };
        if m.serving {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        None
    } else {
        Some(vec![EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| CorePort {
                        name: n.clone(),
                        port: *p,
                        protocol: Some(proto.clone()),
                        app_protocol: None,
                    })
                    .collect(),
            ),
        }])
    };
    let endpoints = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_owned(), name),
                (ENDPOINTS_MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
                (SKIP_MIRROR_LABEL.to_owned(), "true".to_owned()),
            ])),
            annotations: svc.metadata.annotations.clone(),
            owner_references: owners,
            ..ObjectMeta::default()
        },
        subsets,
    };
    DesiredEndpoints { slices, endpoints }
}

/// Whether a stored slice already holds what `want` says (labels we set, owner, type, endpoints, ports).
pub fn slice_matches(have: &EndpointSlice, want: &EndpointSlice) -> bool {
    labels_contain(&have.metadata, &want.metadata)
        && have.metadata.owner_references == want.metadata.owner_references
        && have.address_type == want.address_type
        && have.endpoints == want.endpoints
        && have.ports == want.ports
}

/// Whether a stored Endpoints already holds what `want` says (labels we set, annotations, owner, subsets).
pub fn endpoints_match(have: &Endpoints, want: &Endpoints) -> bool {
    labels_contain(&have.metadata, &want.metadata)
        && have.metadata.annotations == want.metadata.annotations
        && have.metadata.owner_references == want.metadata.owner_references
        && have.subsets.clone().filter(|s| !s.is_empty()) == want.subsets
}

fn labels_contain(have: &ObjectMeta, want: &ObjectMeta) -> bool {
    want.labels
        .iter()
        .flatten()
        .all(|(k, v)| have.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

/// Whether svcwatcher manages a stored slice.
pub fn is_managed_slice(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SLICE_MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGER)
}

/// Whether svcwatcher manages a stored Endpoints.
pub fn is_managed_endpoints(ep: &Endpoints) -> bool {
    ep.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ENDPOINTS_MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGER)
}

/// The label changes that make a DanmEp's labels equal the pod's (behaviour §7: svcwatcher keeps them in
/// sync), as a JSON merge patch of `metadata.labels` (`None` removes a key), or `None` when nothing differs.
/// danm's own bookkeeping labels (`danm.k8s.io/...`) are kept.
pub fn danmep_label_changes(pod: &Pod, ep: &DanmEp) -> Option<BTreeMap<String, Option<String>>> {
    let empty = BTreeMap::new();
    let want = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let have = ep.metadata.labels.as_ref().unwrap_or(&empty);
    let mut changes = BTreeMap::new();
    for (k, v) in want {
        if have.get(k) != Some(v) {
            changes.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in have.keys() {
        if !want.contains_key(k) && !k.starts_with(danm_api::ANNOTATION_PREFIXES[0]) {
            changes.insert(k.clone(), None);
        }
    }
    (!changes.is_empty()).then_some(changes)
}

#[cfg(test)]
mod tests;
