//! Which networks a pod connects to: default-network resolution and the AllowedTenants check
//! (behaviour §2, §4.1).
//!
//! The functions are pure: the caller says which `default` networks exist (it may look them up lazily, in
//! [`DEFAULT_ORDER`], or fetch all three up front) and passes the network objects it fetched.

use danm_api::{NetworkKind, NetworkSpec};

pub use crate::annotation::NetworkRef;
use crate::annotation::{InterfaceRequest, IpRequest};

/// The name a default network has, in every kind.
pub const DEFAULT_NETWORK_NAME: &str = "default";

/// The order in which the default network is looked up: DanmNet `default` in the pod's namespace, then
/// TenantNetwork `default` in the pod's namespace, then ClusterNetwork `default`.
pub const DEFAULT_ORDER: [NetworkKind; 3] = [
    NetworkKind::DanmNet,
    NetworkKind::TenantNetwork,
    NetworkKind::ClusterNetwork,
];

/// Errors of network resolution, with DANM's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "there are no network connections defined, and there is no suitable default network configured in the cluster"
    )]
    NoDefaultNetwork,
    #[error("requested network:{name} of type:{kind} in namespace:{namespace} does not exist")]
    NetworkNotFound {
        kind: NetworkKind,
        name: String,
        namespace: String,
    },
    #[error("Pod:{pod}'s namespace:{namespace} is not in the AllowedTenants whitelist of network:{network}")]
    NotAllowed {
        pod: String,
        namespace: String,
        network: String,
    },
}

impl ResolveError {
    /// The "does not exist" error for a reference, in the pod's namespace (ClusterNetworks too, as DANM printed it).
    pub fn not_found(network: &NetworkRef, pod_namespace: &str) -> Self {
        ResolveError::NetworkNotFound {
            kind: network.kind,
            name: network.name.clone(),
            namespace: pod_namespace.to_owned(),
        }
    }
}

/// The request used for a default network of `kind`: sequence 0 (so `eth0`), `ip: dynamic`, no IPv6, no policy
/// routes (behaviour §2). IPAM only allocates when the network has a `cidr` (or, for a static delegate, it is
/// not used at all: behaviour §4.5).
pub fn default_request(kind: NetworkKind) -> InterfaceRequest {
    InterfaceRequest {
        index: 0,
        network: NetworkRef::new(kind, DEFAULT_NETWORK_NAME),
        ip: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        proutes: None,
        proutes6: None,
    }
}

/// Picks the default network: the first kind in [`DEFAULT_ORDER`] for which `exists` says a network named `default`
/// exists (DanmNet and TenantNetwork in the pod's namespace, ClusterNetwork cluster-wide). `exists` is called in
/// that order and not after the first hit.
pub fn resolve_default(
    mut exists: impl FnMut(NetworkKind) -> bool,
) -> Result<InterfaceRequest, ResolveError> {
    DEFAULT_ORDER
        .into_iter()
        .find(|kind| exists(*kind))
        .map(default_request)
        .ok_or(ResolveError::NoDefaultNetwork)
}

/// The connections of a pod: the annotation's requests if there are any, else the default network.
pub fn requested_or_default(
    requested: Vec<InterfaceRequest>,
    exists: impl FnMut(NetworkKind) -> bool,
) -> Result<Vec<InterfaceRequest>, ResolveError> {
    if requested.is_empty() {
        Ok(vec![resolve_default(exists)?])
    } else {
        Ok(requested)
    }
}

/// The AllowedTenants check (behaviour §1.2): a ClusterNetwork with a non-empty `AllowedTenants` list only
/// accepts pods of the listed namespaces. An absent or empty list allows every namespace; the list means
/// nothing on DanmNets and TenantNetworks (the webhook rejects it there), so it is not consulted for them.
pub fn check_allowed_tenants(
    network: &NetworkRef,
    spec: &NetworkSpec,
    pod: &str,
    pod_namespace: &str,
) -> Result<(), ResolveError> {
    if network.kind != NetworkKind::ClusterNetwork {
        return Ok(());
    }
    match spec.allowed_tenants.as_deref() {
        Some(allowed) if !allowed.is_empty() && !allowed.iter().any(|ns| ns == pod_namespace) => {
            Err(ResolveError::NotAllowed {
                pod: pod.to_owned(),
                namespace: pod_namespace.to_owned(),
                network: network.name.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Whether danm's IPAM allocates for this interface (behaviour §4.5). Dynamic backends (ipvlan, macvlan,
/// sriov) always use it (with neither family requested nothing is allocated and the interface is L2). A
/// static delegate uses it only when a family says `none`, or asks for an address on a network that has that
/// family (`cidr`; `net6` or the v6 pool CIDR); otherwise the delegate's own `ipam` section is left alone.
/// When danm's IPAM is used it handles both families.
pub fn needs_danm_ipam(spec: &NetworkSpec, ip: &IpRequest, ip6: &IpRequest) -> bool {
    if spec.is_dynamic() {
        return true;
    }
    let opts = &spec.options;
    let has_v6 = !opts.net6.is_empty() || !opts.allocation_pool_v6.cidr.is_empty();
    *ip == IpRequest::None
        || *ip6 == IpRequest::None
        || (ip.needs_ipam() && !opts.cidr.is_empty())
        || (ip6.needs_ipam() && has_v6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::parse_interfaces;

    fn order_seen(existing: &[NetworkKind]) -> (Result<InterfaceRequest, ResolveError>, Vec<NetworkKind>) {
        let mut seen = Vec::new();
        let result = resolve_default(|kind| {
            seen.push(kind);
            existing.contains(&kind)
        });
        (result, seen)
    }

    #[test]
    fn a_namespace_danmnet_default_wins_over_the_cluster_network_default() {
        // behaviour §11 [ANN] 11
        let (chosen, seen) = order_seen(&[NetworkKind::DanmNet, NetworkKind::ClusterNetwork]);
        assert_eq!(
            chosen.unwrap().network,
            NetworkRef::new(NetworkKind::DanmNet, "default")
        );
        assert_eq!(seen, vec![NetworkKind::DanmNet], "no lookup after the first hit");
    }

    #[test]
    fn a_tenant_network_default_wins_over_the_cluster_network_default() {
        // behaviour §11 [ANN] 12
        let (chosen, seen) = order_seen(&[NetworkKind::TenantNetwork, NetworkKind::ClusterNetwork]);
        assert_eq!(
            chosen.unwrap().network,
            NetworkRef::new(NetworkKind::TenantNetwork, "default")
        );
        assert_eq!(seen, vec![NetworkKind::DanmNet, NetworkKind::TenantNetwork]);
    }

    #[test]
    fn the_cluster_network_default_is_the_last_resort() {
        let (chosen, seen) = order_seen(&[NetworkKind::ClusterNetwork]);
        assert_eq!(
            chosen.unwrap().network,
            NetworkRef::new(NetworkKind::ClusterNetwork, "default")
        );
        assert_eq!(seen, DEFAULT_ORDER.to_vec());
    }

    #[test]
    fn no_annotation_and_no_default_network_fails_with_danms_message() {
        // behaviour §11 [ANN] 13
        let (chosen, seen) = order_seen(&[]);
        assert_eq!(
            chosen.unwrap_err().to_string(),
            "there are no network connections defined, and there is no suitable default network configured in the cluster"
        );
        assert_eq!(seen, DEFAULT_ORDER.to_vec());
    }

    #[test]
    fn the_default_network_is_sequence_zero_with_a_dynamic_ipv4_only() {
        // behaviour §11 [ANN] 14 (the name eth0 follows from sequence 0, see naming)
        let request = default_request(NetworkKind::ClusterNetwork);
        assert_eq!(request.index, 0);
        assert_eq!(request.ip, IpRequest::Dynamic);
        assert_eq!(request.ip6, IpRequest::Absent);
        assert_eq!((request.proutes, request.proutes6), (None, None));
    }

    #[test]
    fn an_empty_annotation_falls_back_to_the_default_network() {
        // behaviour §11 [ANN] 10
        let requested = parse_interfaces("k", "[]").unwrap();
        let resolved = requested_or_default(requested, |kind| kind == NetworkKind::TenantNetwork).unwrap();
        assert_eq!(resolved, vec![default_request(NetworkKind::TenantNetwork)]);
    }

    #[test]
    fn requested_interfaces_are_kept_and_no_default_is_looked_up() {
        let requested = parse_interfaces("k", r#"[{"network":"a"},{"clusterNetwork":"b"}]"#).unwrap();
        let mut lookups = 0;
        let resolved = requested_or_default(requested.clone(), |_| {
            lookups += 1;
            true
        })
        .unwrap();
        assert_eq!(resolved, requested);
        assert_eq!(lookups, 0);
    }

    fn spec_with_tenants(tenants: Option<&[&str]>) -> NetworkSpec {
        NetworkSpec {
            allowed_tenants: tenants.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            ..NetworkSpec::default()
        }
    }

    #[test]
    fn allowed_tenants_refuses_a_pod_of_another_namespace() {
        // behaviour §11 [CNI] 15
        let network = NetworkRef::new(NetworkKind::ClusterNetwork, "ext");
        let err =
            check_allowed_tenants(&network, &spec_with_tenants(Some(&["a"])), "web-0", "b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod:web-0's namespace:b is not in the AllowedTenants whitelist of network:ext"
        );
    }

    #[test]
    fn allowed_tenants_accepts_a_listed_namespace() {
        let network = NetworkRef::new(NetworkKind::ClusterNetwork, "ext");
        assert!(check_allowed_tenants(&network, &spec_with_tenants(Some(&["a", "b"])), "p", "b").is_ok());
    }

    #[test]
    fn an_absent_or_empty_allowed_tenants_list_allows_every_namespace() {
        let network = NetworkRef::new(NetworkKind::ClusterNetwork, "ext");
        assert!(check_allowed_tenants(&network, &spec_with_tenants(None), "p", "any").is_ok());
        assert!(check_allowed_tenants(&network, &spec_with_tenants(Some(&[])), "p", "any").is_ok());
    }

    #[test]
    fn allowed_tenants_is_not_consulted_for_namespaced_kinds() {
        for kind in [NetworkKind::DanmNet, NetworkKind::TenantNetwork] {
            let network = NetworkRef::new(kind, "n");
            assert!(check_allowed_tenants(&network, &spec_with_tenants(Some(&["a"])), "p", "b").is_ok());
        }
    }

    fn static_spec(cidr: &str, net6: &str) -> NetworkSpec {
        let mut spec = NetworkSpec {
            network_type: "flannel".into(),
            ..NetworkSpec::default()
        };
        spec.options.cidr = cidr.into();
        spec.options.net6 = net6.into();
        spec
    }

    #[test]
    fn dynamic_backends_always_use_danm_ipam() {
        for t in ["", "ipvlan", "IPVLAN", "macvlan", "sriov"] {
            let spec = NetworkSpec {
                network_type: t.into(),
                ..NetworkSpec::default()
            };
            assert!(
                needs_danm_ipam(&spec, &IpRequest::Absent, &IpRequest::Absent),
                "{t:?}"
            );
        }
    }

    #[test]
    fn a_static_delegate_uses_danm_ipam_only_for_none_or_an_address_on_a_network_with_that_family() {
        let dynamic = IpRequest::Dynamic;
        let absent = IpRequest::Absent;
        // behaviour §11 [CNI] 40: cidr + dynamic → danm IPAM (fakeipam)
        assert!(needs_danm_ipam(
            &static_spec("10.0.0.0/24", ""),
            &dynamic,
            &absent
        ));
        // behaviour §11 [CNI] 41: no ip → the file's own ipam
        assert!(!needs_danm_ipam(
            &static_spec("10.0.0.0/24", ""),
            &absent,
            &absent
        ));
        // behaviour §11 [CNI] 42: dynamic but no cidr → the file's own ipam
        assert!(!needs_danm_ipam(&static_spec("", ""), &dynamic, &absent));
        // "none" in either family → danm IPAM
        assert!(needs_danm_ipam(&static_spec("", ""), &IpRequest::None, &absent));
        assert!(needs_danm_ipam(&static_spec("", ""), &absent, &IpRequest::None));
        // IPv6 request on a network with net6
        assert!(needs_danm_ipam(
            &static_spec("", "2001:db8::/64"),
            &absent,
            &dynamic
        ));
        assert!(!needs_danm_ipam(
            &static_spec("10.0.0.0/24", ""),
            &absent,
            &dynamic
        ));
    }

    #[test]
    fn a_missing_network_reads_as_in_danm() {
        // behaviour §11 [CNI] 16
        let err = ResolveError::not_found(&NetworkRef::new(NetworkKind::DanmNet, "x"), "ns");
        assert_eq!(
            err.to_string(),
            "requested network:x of type:DanmNet in namespace:ns does not exist"
        );
    }
}
