//! `kubectl danm pod`: a pod's interfaces from its DanmEps, and whether the `k8s.v1.cni.cncf.io/network-status`
//! annotation the CNI wrote agrees with them, per interface. Works on objects already read from the cluster.

use danm_api::{DanmEp, NetworkKind, backend_of};
use danm_core::annotation::NetworkRef;
use danm_core::cni::{NetworkStatus, npwg_name};
use serde::Serialize;

use super::table;

/// How the network-status annotation sees one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "differences", rename_all = "lowercase")]
pub enum Agreement {
    /// The status entry of the interface names the same network, addresses and MAC.
    Agrees,
    /// The entry exists but differs; each string says in what.
    Differs(Vec<String>),
    /// No status entry for the interface (or no annotation at all).
    Missing,
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Agreement::Agrees => f.write_str("agrees"),
            Agreement::Missing => f.write_str("missing"),
            Agreement::Differs(d) => write!(f, "differs: {}", d.join("; ")),
        }
    }
}

/// One interface of the pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub interface: String,
    /// `Kind name` of the network.
    pub network: String,
    pub addresses: Vec<String>,
    pub mac: String,
    pub backend: String,
    pub danmep: String,
    pub status: Agreement,
}

/// What `kubectl danm pod` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodReport {
    pub namespace: String,
    pub pod: String,
    pub interfaces: Vec<Interface>,
    /// Status entries no DanmEp accounts for (`name interface`).
    pub status_only: Vec<String>,
    /// Why the annotation could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_error: Option<String>,
}

impl PodReport {
    /// Whether the annotation and the DanmEps disagree anywhere (exit status 2).
    pub fn disagrees(&self) -> bool {
        self.status_error.is_some()
            || !self.status_only.is_empty()
            || self.interfaces.iter().any(|i| i.status != Agreement::Agrees)
    }
}

fn real(addr: &str) -> bool {
    !addr.is_empty() && addr != "none"
}

fn bare(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

/// Compares the DanmEps of a pod with its network-status annotation (`status`: the annotation's value, if any).
pub fn report(namespace: &str, pod: &str, eps: &[DanmEp], status: Option<&str>) -> PodReport {
    let (entries, status_error) = match status.map(serde_json::from_str::<Vec<NetworkStatus>>) {
        None => (Vec::new(), None),
        Some(Ok(e)) => (e, None),
        Some(Err(e)) => (
            Vec::new(),
            Some(format!(
                "annotation {} is not a network-status list: {e}",
                danm_api::NETWORK_STATUS_ANNOTATION
            )),
        ),
    };
    let mut eps: Vec<&DanmEp> = eps.iter().collect();
    eps.sort_by(|a, b| a.spec.interface.name.cmp(&b.spec.interface.name));
    let mut used = vec![false; entries.len()];
    let interfaces = eps
        .iter()
        .map(|ep| {
            let s = &ep.spec;
            // An NPWG attachment's DanmEp names its NAD as `<namespace>/<nad>`, which network-status lists as is.
            let npwg = s.api_type == danm_api::nad::NAD_KIND;
            let kind: NetworkKind = if s.api_type.is_empty() {
                NetworkKind::DanmNet
            } else {
                s.api_type.parse().unwrap_or(NetworkKind::DanmNet)
            };
            let addresses: Vec<String> = [&s.interface.address, &s.interface.address_ipv6]
                .into_iter()
                .filter(|a| real(a))
                .cloned()
                .collect();
            let found = entries.iter().position(|e| e.interface == s.interface.name);
            let status = match found {
                None => Agreement::Missing,
                Some(i) => {
                    used[i] = true;
                    let e = &entries[i];
                    let mut diffs = Vec::new();
                    let want = if npwg {
                        s.network_name.clone()
                    } else {
                        npwg_name(&NetworkRef::new(kind, s.network_name.clone()), namespace)
                    };
                    if e.name != want {
                        diffs.push(format!("network {:?}, DanmEp {want:?}", e.name));
                    }
                    let mut mine: Vec<&str> = addresses.iter().map(|a| bare(a)).collect();
                    let mut theirs: Vec<&str> = e.ips.iter().map(String::as_str).collect();
                    mine.sort_unstable();
                    theirs.sort_unstable();
                    if mine != theirs {
                        diffs.push(format!(
                            "ips [{}], DanmEp [{}]",
                            theirs.join(", "),
                            mine.join(", ")
                        ));
                    }
                    let mac = &s.interface.mac_address;
                    if !mac.is_empty() && !e.mac.is_empty() && !mac.eq_ignore_ascii_case(&e.mac) {
                        diffs.push(format!("mac {}, DanmEp {mac}", e.mac));
                    }
                    if diffs.is_empty() {
                        Agreement::Agrees
                    } else {
                        Agreement::Differs(diffs)
                    }
                }
            };
            let mac = if s.interface.mac_address.is_empty() {
                found.map(|i| entries[i].mac.clone()).unwrap_or_default()
            } else {
                s.interface.mac_address.clone()
            };
            Interface {
                interface: s.interface.name.clone(),
                network: if npwg {
                    format!("{} {}", s.api_type, s.network_name)
                } else {
                    format!("{kind} {}", s.network_name)
                },
                addresses,
                mac,
                backend: backend_of(&s.network_type),
                danmep: ep.metadata.name.clone().unwrap_or_default(),
                status,
            }
        })
        .collect();
    let status_only = entries
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| format!("{} {}", e.name, e.interface))
        .collect();
    PodReport {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        interfaces,
        status_only,
        status_error,
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The human table, then the status entries without a DanmEp and the annotation's problem.
pub fn render(r: &PodReport) -> String {
    let mut out = format!("pod {}/{}\n", r.namespace, r.pod);
    if r.interfaces.is_empty() {
        out.push_str("no DanmEps: danm has set up no interface of this pod (try `kubectl danm why`)\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .interfaces
            .iter()
            .map(|i| {
                vec![
                    i.interface.clone(),
                    i.network.clone(),
                    dash(&i.addresses.join(",")),
                    dash(&i.mac),
                    i.backend.clone(),
                    i.danmep.clone(),
                    i.status.to_string(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &[
                "INTERFACE",
                "NETWORK",
                "ADDRESSES",
                "MAC",
                "BACKEND",
                "DANMEP",
                "NETWORK-STATUS",
            ],
            &rows,
        ));
    }
    for s in &r.status_only {
        out.push_str(&format!("network-status lists {s}, which has no DanmEp\n"));
    }
    if let Some(e) = &r.status_error {
        out.push_str(e);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use danm_api::{DanmEpInterface, DanmEpSpec};

    fn ep(name: &str, ifname: &str, kind: &str, network: &str, addr: &str, mac: &str) -> DanmEp {
        DanmEp::new(
            "demo",
            name,
            DanmEpSpec {
                network_name: network.into(),
                network_type: "macvlan".into(),
                api_type: kind.into(),
                interface: DanmEpInterface {
                    name: ifname.into(),
                    address: addr.into(),
                    address_ipv6: "none".into(),
                    mac_address: mac.into(),
                    ..DanmEpInterface::default()
                },
                ..DanmEpSpec::default()
            },
        )
    }

    #[test]
    fn each_interface_is_compared_with_its_status_entry() {
        let eps = [
            ep("e1", "eth0", "DanmNet", "management", "10.0.0.5/24", ""),
            ep(
                "e2",
                "ext1",
                "ClusterNetwork",
                "external",
                "10.1.0.7/24",
                "02:00:00:00:00:01",
            ),
            ep("e3", "int2", "DanmNet", "internal", "10.2.0.9/24", ""),
        ];
        let status = r#"[
            {"name":"demo/management","interface":"eth0","ips":["10.0.0.5"],"mac":"02:00:00:00:00:aa","default":true,"dns":{}},
            {"name":"external","interface":"ext1","ips":["10.1.0.8"],"mac":"02:00:00:00:00:01","dns":{}},
            {"name":"demo/other","interface":"net9","ips":[],"dns":{}}
        ]"#;
        let r = report("demo", "p", &eps, Some(status));
        assert_eq!(r.interfaces[0].interface, "eth0");
        assert_eq!(r.interfaces[0].status, Agreement::Agrees);
        assert_eq!(
            r.interfaces[0].mac, "02:00:00:00:00:aa",
            "the MAC comes from the status when the DanmEp has none"
        );
        assert_eq!(
            r.interfaces[1].status,
            Agreement::Differs(vec!["ips [10.1.0.8], DanmEp [10.1.0.7]".into()])
        );
        assert_eq!(r.interfaces[1].network, "ClusterNetwork external");
        assert_eq!(r.interfaces[2].status, Agreement::Missing);
        assert_eq!(r.status_only, ["demo/other net9"]);
        assert!(r.disagrees());
        let text = render(&r);
        assert!(
            text.contains("differs: ips [10.1.0.8], DanmEp [10.1.0.7]"),
            "{text}"
        );
        assert!(
            text.contains("network-status lists demo/other net9, which has no DanmEp"),
            "{text}"
        );
    }

    #[test]
    fn a_pod_whose_status_matches_every_danmep_agrees() {
        let eps = [ep("e1", "eth0", "", "default", "10.0.0.5/24", "")];
        let status = r#"[{"name":"demo/default","interface":"eth0","ips":["10.0.0.5"],"dns":{}}]"#;
        let r = report("demo", "p", &eps, Some(status));
        assert_eq!(
            r.interfaces[0].network, "DanmNet default",
            "an empty apiType is a DanmNet (B11)"
        );
        assert!(!r.disagrees(), "{r:?}");
    }

    #[test]
    fn an_npwg_attachment_is_compared_under_its_nads_namespaced_name() {
        let eps = [
            ep("e1", "eth0", "DanmNet", "default", "10.0.0.5/24", ""),
            ep(
                "e2",
                "net1",
                "NetworkAttachmentDefinition",
                "other/br",
                "10.9.0.2/24",
                "",
            ),
        ];
        let status = r#"[{"name":"demo/default","interface":"eth0","ips":["10.0.0.5"],"dns":{}},
                         {"name":"other/br","interface":"net1","ips":["10.9.0.2"],"dns":{}}]"#;
        let r = report("demo", "p", &eps, Some(status));
        assert!(!r.disagrees(), "{r:?}");
        assert_eq!(r.interfaces[1].network, "NetworkAttachmentDefinition other/br");
        let wrong = r#"[{"name":"demo/default","interface":"eth0","ips":["10.0.0.5"],"dns":{}},
                        {"name":"demo/br","interface":"net1","ips":["10.9.0.2"],"dns":{}}]"#;
        assert_eq!(
            report("demo", "p", &eps, Some(wrong)).interfaces[1].status,
            Agreement::Differs(vec![r#"network "demo/br", DanmEp "other/br""#.into()])
        );
    }

    #[test]
    fn a_pod_without_danmeps_points_to_why_and_is_no_disagreement() {
        let r = report("demo", "p", &[], None);
        assert!(!r.disagrees());
        assert!(
            render(&r)
                .contains("no DanmEps: danm has set up no interface of this pod (try `kubectl danm why`)")
        );
        // A status entry without any DanmEp is one.
        let r = report(
            "demo",
            "p",
            &[],
            Some(r#"[{"name":"demo/n","interface":"eth0"}]"#),
        );
        assert_eq!(r.status_only, ["demo/n eth0"]);
        assert!(r.disagrees());
    }

    #[test]
    fn a_network_name_of_another_kind_or_a_missing_or_broken_annotation_disagrees() {
        let eps = [ep("e1", "eth0", "DanmNet", "n", "10.0.0.5/24", "")];
        let r = report(
            "demo",
            "p",
            &eps,
            Some(r#"[{"name":"n","interface":"eth0","ips":["10.0.0.5"]}]"#),
        );
        assert_eq!(
            r.interfaces[0].status,
            Agreement::Differs(vec![r#"network "n", DanmEp "demo/n""#.into()])
        );
        let r = report("demo", "p", &eps, None);
        assert_eq!(r.interfaces[0].status, Agreement::Missing);
        let r = report("demo", "p", &eps, Some("{"));
        assert!(
            r.status_error.as_deref().unwrap().contains("network-status"),
            "{r:?}"
        );
        assert!(r.disagrees());
    }
}
