//! "Is this network in use?" (behaviour §8.2 V27, §8.5): DanmEps whose `apiType` is the network's kind (an
//! empty `apiType` counts as DanmNet, behaviour §10 B11), whose `NetworkName` is its name, and that live in
//! its namespace (any namespace for a ClusterNetwork); and NPWG attachments' DanmEps, in any namespace, whose
//! addresses danm's IPAM allocated from the network (`danm.k8s.io/ipam-network: <Kind>/<namespace>/<name>`,
//! behaviour §2.1).

use danm_api::{DanmEp, NetworkKind};

/// The DanmEps connected to network `kind`/`namespace`/`name`.
pub fn connected_endpoints<'a>(
    eps: &'a [DanmEp],
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<&'a DanmEp> {
    let cluster_scoped = kind == NetworkKind::ClusterNetwork.as_str();
    eps.iter()
        .filter(|ep| {
            if let Some((pool_kind, pool_ns, pool_name)) = ep.ipam_pool() {
                return pool_kind == kind && pool_name == name && (cluster_scoped || pool_ns == namespace);
            }
            let ep_kind = NetworkKind::from_api_type(&ep.spec.api_type)
                .map(|k| k.as_str())
                .unwrap_or("");
            ep_kind == kind
                && ep.spec.network_name == name
                && (cluster_scoped || ep.metadata.namespace.as_deref().unwrap_or("") == namespace)
        })
        .collect()
}

/// `Pod:<p> in namespace:<ns>` for the first endpoint, plus how many other pods are connected and a few of them.
pub(crate) fn describe_pods(eps: &[&DanmEp]) -> String {
    let mut pods: Vec<(String, String)> = eps
        .iter()
        .map(|ep| {
            (
                ep.metadata.namespace.clone().unwrap_or_default(),
                ep.spec.pod.clone(),
            )
        })
        .collect();
    pods.dedup();
    let (ns, pod) = pods.first().cloned().unwrap_or_default();
    let mut text = format!("Pod:{pod} in namespace:{ns}");
    if pods.len() > 1 {
        let others: Vec<String> = pods
            .iter()
            .skip(1)
            .take(5)
            .map(|(ns, p)| format!("{ns}/{p}"))
            .collect();
        let more = pods.len() - 1 - others.len();
        text.push_str(&format!(" (also {}", others.join(", ")));
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use danm_api::DanmEpSpec;

    use super::*;

    fn ep(ns: &str, pod: &str, net: &str, api_type: &str) -> DanmEp {
        DanmEp::new(
            ns,
            &format!("{pod}-ep"),
            DanmEpSpec {
                network_name: net.into(),
                pod: pod.into(),
                api_type: api_type.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn an_endpoint_with_an_empty_api_type_counts_as_a_danmnet_user() {
        let eps = vec![ep("ns", "p", "default", "")];
        assert_eq!(connected_endpoints(&eps, "DanmNet", "ns", "default").len(), 1);
        assert!(connected_endpoints(&eps, "TenantNetwork", "ns", "default").is_empty());
    }

    #[test]
    fn namespaced_networks_match_only_their_namespace_but_cluster_networks_match_all() {
        let eps = vec![
            ep("a", "p1", "n", "DanmNet"),
            ep("b", "p2", "n", "ClusterNetwork"),
        ];
        assert!(connected_endpoints(&eps, "DanmNet", "b", "n").is_empty());
        assert_eq!(connected_endpoints(&eps, "ClusterNetwork", "", "n").len(), 1);
    }

    #[test]
    fn an_npwg_attachment_drawing_on_a_pool_counts_as_its_user_from_any_namespace() {
        let mut npwg = ep(
            "other",
            "multus",
            "default/macvlan-nad",
            "NetworkAttachmentDefinition",
        );
        npwg.metadata.annotations = Some(
            [(
                danm_api::annotations::IPAM_NETWORK.to_owned(),
                "DanmNet/default/pool".to_owned(),
            )]
            .into(),
        );
        let eps = vec![npwg];
        assert_eq!(connected_endpoints(&eps, "DanmNet", "default", "pool").len(), 1);
        assert!(connected_endpoints(&eps, "DanmNet", "other", "pool").is_empty());
        assert!(connected_endpoints(&eps, "TenantNetwork", "default", "pool").is_empty());
        assert!(connected_endpoints(&eps, "DanmNet", "default", "default/macvlan-nad").is_empty());
    }

    #[test]
    fn the_description_names_the_first_pod_and_counts_the_others() {
        let eps = [ep("a", "p1", "n", "DanmNet"), ep("a", "p2", "n", "DanmNet")];
        let refs: Vec<&DanmEp> = eps.iter().collect();
        assert_eq!(describe_pods(&refs), "Pod:p1 in namespace:a (also a/p2)");
    }
}
