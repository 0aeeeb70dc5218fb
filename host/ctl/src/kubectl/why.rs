//! `kubectl danm why`: explains a pod's missing or failed danm interfaces from what the cluster holds — its
//! annotations (danm's and the NPWG `k8s.v1.cni.cncf.io/networks`), the networks and NetworkAttachmentDefinitions
//! they name (or the default network), AllowedTenants, the pools' use, its DanmEps and the CNI's last
//! `DanmAddFailed` event — and says what to do. [`diagnose`] is pure: the caller gathers the [`Facts`].

use danm_api::nad::NAD_KIND;
use danm_api::{NetworkKind, NetworkSpec};
use danm_core::annotation::npwg::NETWORKS_ANNOTATION;
use danm_core::annotation::{InterfaceRequest, IpRequest, NetworkRef};
use danm_core::resolve::{ResolveError, check_allowed_tenants, resolve_default};
use serde::Serialize;

use super::networks::PoolUse;

/// The reason the CNI gives its failure events (core/v1 Event, `type: Warning`, `source.component: danm`).
pub const FAILURE_REASON: &str = "DanmAddFailed";

/// A network the pod's requests name, as found in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkFacts {
    pub spec: NetworkSpec,
    pub ipv4: Option<PoolUse>,
    pub ipv6: Option<PoolUse>,
}

/// The CNI's failures of the pod, from its `DanmAddFailed` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// When the last one happened (RFC 3339).
    pub time: String,
    /// How many failures the events record in all.
    pub count: i32,
    /// The last one's message: danm's error.
    pub message: String,
}

/// A NetworkAttachmentDefinition the pod's NPWG annotation selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadFacts {
    /// `<namespace>/<nad>`, as the NPWG attachment's DanmEp names it.
    pub qualified: String,
    pub exists: bool,
}

/// What `why` looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub namespace: String,
    pub pod: String,
    /// The interfaces annotation's key, when the pod has one.
    pub annotation: Option<String>,
    /// The pod's requests (empty: the default network), or why the annotation does not parse.
    pub requests: Result<Vec<InterfaceRequest>, String>,
    /// The kinds in which a network named `default` is visible to the pod.
    pub defaults: Vec<NetworkKind>,
    /// Every network a request (or the default) names that exists; a missing one is absent.
    pub networks: Vec<(NetworkRef, NetworkFacts)>,
    /// The networks the pod has DanmEps on.
    pub attached: Vec<NetworkRef>,
    /// The NADs its NPWG annotation selects (empty: none), or why that annotation does not parse.
    pub npwg: Result<Vec<NadFacts>, String>,
    /// The NADs (`<namespace>/<nad>`) the pod has NPWG attachments' DanmEps on.
    pub attached_nads: Vec<String>,
    pub last_failure: Option<Failure>,
}

/// One thing wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// The interfaces annotation does not parse.
    BadAnnotation { key: String, error: String },
    /// No annotation (or an empty one) and no network named `default`.
    NoDefaultNetwork,
    /// A requested network does not exist.
    UnknownNetwork { network: String, namespace: String },
    /// A ClusterNetwork's AllowedTenants excludes the pod's namespace.
    NotAllowed {
        network: String,
        namespace: String,
        allowed_tenants: Vec<String>,
    },
    /// A dynamic request on a pool that has no free address.
    PoolExhausted {
        network: String,
        family: String,
        used: u64,
        size: u64,
    },
    /// The CNI's ADD of the pod failed (the last failure's time and message, how many in all).
    CniFailed(Failure),
    /// A requested network has no DanmEp of the pod, and nothing above explains it.
    NotAttached { network: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::BadAnnotation { key, error } => write!(f, "annotation {key} does not parse: {error}"),
            Problem::NoDefaultNetwork => f.write_str(
                "the pod has no danm.k8s.io/interfaces annotation and there is no default network (DanmNet or \
                 TenantNetwork \"default\" in its namespace, ClusterNetwork \"default\")",
            ),
            Problem::UnknownNetwork { network, namespace } => {
                write!(f, "{network} does not exist (looked up for namespace {namespace})")
            }
            Problem::NotAllowed {
                network,
                namespace,
                allowed_tenants,
            } => write!(
                f,
                "{network} does not allow namespace {namespace}: spec.AllowedTenants is [{}]",
                allowed_tenants.join(", ")
            ),
            Problem::PoolExhausted {
                network,
                family,
                used,
                size,
            } => write!(
                f,
                "the {family} pool of {network} is exhausted: {used}/{size} {}",
                super::table::bar(*used, *size, 10)
            ),
            Problem::CniFailed(e) => write!(
                f,
                "the CNI's ADD failed {} time{}, last at {}: {}",
                e.count,
                if e.count == 1 { "" } else { "s" },
                e.time,
                e.message
            ),
            Problem::NotAttached { network } => write!(f, "{network} has no DanmEp of this pod"),
        }
    }
}

impl Problem {
    /// What an operator does about it.
    pub fn advice(&self, namespace: &str, pod: &str) -> String {
        match self {
            Problem::BadAnnotation { key, .. } if key == NETWORKS_ANNOTATION => format!(
                "fix the pod's {key} annotation (a comma list of [<namespace>/]<nad>[@<interface>], or a JSON list of \
                 network selection elements) and recreate it"
            ),
            Problem::BadAnnotation { key, .. } => {
                format!(
                    "fix the pod's {key} annotation (a JSON list of {{\"network\": ...}} elements) and recreate it"
                )
            }
            Problem::NoDefaultNetwork => format!(
                "add a danm.k8s.io/interfaces annotation to the pod, or create a DanmNet named \"default\" in \
                 namespace {namespace}"
            ),
            Problem::UnknownNetwork { network, .. } => {
                format!("create {network}, or correct the network's name or kind in the pod's annotation")
            }
            Problem::NotAllowed {
                network, namespace, ..
            } => format!(
                "add {namespace} to spec.AllowedTenants of {network}, or connect the pod to a network its namespace \
                 may use"
            ),
            Problem::PoolExhausted { network, .. } => format!(
                "free addresses of {network} (delete pods that no longer need them; `kubectl danm networks` shows \
                 the pool) or enlarge its allocation pool"
            ),
            Problem::CniFailed(_) => format!(
                "read the CNI error above; `kubectl describe pod -n {namespace} {pod}` shows the events, and the \
                 node's kubelet log the full error"
            ),
            Problem::NotAttached { .. } => format!(
                "the CNI has not set the interface up (yet): check that the pod is scheduled and its sandbox \
                 started (`kubectl describe pod -n {namespace} {pod}`)"
            ),
        }
    }
}

/// What `why` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub namespace: String,
    pub pod: String,
    /// The networks the pod connects to (`Kind name`), from its annotation or the default.
    pub requested: Vec<String>,
    pub problems: Vec<Problem>,
    /// Something worth knowing that is not a problem (an earlier failure the pod has recovered from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What to do about the first problem, or that nothing is wrong.
    pub advice: String,
}

impl Diagnosis {
    pub fn found_problem(&self) -> bool {
        !self.problems.is_empty()
    }
}

fn name(r: &NetworkRef, namespace: &str) -> String {
    if r.kind.namespaced() {
        format!("{} {namespace}/{}", r.kind, r.name)
    } else {
        format!("{} {}", r.kind, r.name)
    }
}

/// Explains the pod from the facts.
pub fn diagnose(facts: &Facts) -> Diagnosis {
    let ns = facts.namespace.as_str();
    let mut problems = Vec::new();
    let requests = match &facts.requests {
        Err(error) => {
            problems.push(Problem::BadAnnotation {
                key: facts
                    .annotation
                    .clone()
                    .unwrap_or_else(|| danm_api::INTERFACES_ANNOTATION.to_owned()),
                error: error.clone(),
            });
            Vec::new()
        }
        Ok(r) if r.is_empty() => match resolve_default(|k| facts.defaults.contains(&k)) {
            Ok(r) => vec![r],
            Err(_) => {
                problems.push(Problem::NoDefaultNetwork);
                Vec::new()
            }
        },
        Ok(r) => r.clone(),
    };
    let mut missing = Vec::new();
    for req in &requests {
        let shown = name(&req.network, ns);
        let Some((_, net)) = facts.networks.iter().find(|(r, _)| *r == req.network) else {
            problems.push(Problem::UnknownNetwork {
                network: shown,
                namespace: ns.to_owned(),
            });
            continue;
        };
        if let Err(ResolveError::NotAllowed { .. }) =
            check_allowed_tenants(&req.network, &net.spec, &facts.pod, ns)
        {
            problems.push(Problem::NotAllowed {
                network: shown,
                namespace: ns.to_owned(),
                allowed_tenants: net.spec.allowed_tenants.clone().unwrap_or_default(),
            });
            continue;
        }
        let attached = facts.attached.contains(&req.network);
        for (family, wanted, pool) in [("IPv4", req.ip, net.ipv4), ("IPv6", req.ip6, net.ipv6)] {
            if let (false, IpRequest::Dynamic, Some(p)) = (attached, wanted, pool)
                && p.exhausted()
            {
                problems.push(Problem::PoolExhausted {
                    network: shown.clone(),
                    family: family.to_owned(),
                    used: p.used,
                    size: p.size,
                });
            }
        }
        if !attached {
            missing.push(shown);
        }
    }
    // The NPWG attachments, after danm's own (as the CNI sets them up).
    let mut requested: Vec<String> = requests.iter().map(|r| name(&r.network, ns)).collect();
    match &facts.npwg {
        Err(error) => problems.push(Problem::BadAnnotation {
            key: NETWORKS_ANNOTATION.to_owned(),
            error: error.clone(),
        }),
        Ok(nads) => {
            for nad in nads {
                let shown = format!("{NAD_KIND} {}", nad.qualified);
                requested.push(shown.clone());
                if !nad.exists {
                    problems.push(Problem::UnknownNetwork {
                        network: shown,
                        namespace: ns.to_owned(),
                    });
                } else if !facts.attached_nads.contains(&nad.qualified) {
                    missing.push(shown);
                }
            }
        }
    }
    let mut note = None;
    if let Some(f) = &facts.last_failure {
        if problems.is_empty() && missing.is_empty() {
            note = Some(format!(
                "an earlier ADD failed at {} ({}); every requested interface has its DanmEp now",
                f.time, f.message
            ));
        } else {
            problems.push(Problem::CniFailed(f.clone()));
        }
    }
    if problems.is_empty() {
        problems.extend(
            missing
                .into_iter()
                .map(|network| Problem::NotAttached { network }),
        );
    }
    let advice = problems.first().map_or_else(
        || "nothing to do: every requested network exists, admits the pod and has its DanmEp".to_owned(),
        |p| p.advice(ns, &facts.pod),
    );
    Diagnosis {
        namespace: ns.to_owned(),
        pod: facts.pod.clone(),
        requested,
        problems,
        note,
        advice,
    }
}

/// The human text: the pod, what it requests, each problem, and the line saying what to do.
pub fn render(d: &Diagnosis) -> String {
    let mut out = format!("pod {}/{}\n", d.namespace, d.pod);
    if !d.requested.is_empty() {
        out.push_str(&format!("requests: {}\n", d.requested.join(", ")));
    }
    for p in &d.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    if let Some(n) = &d.note {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!("what to do: {}\n", d.advice));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use danm_core::annotation::parse_interfaces;

    fn facts(annotation: Option<&str>) -> Facts {
        Facts {
            namespace: "demo".into(),
            pod: "p".into(),
            annotation: annotation.map(|_| danm_api::INTERFACES_ANNOTATION.to_owned()),
            requests: annotation.map_or(Ok(Vec::new()), |a| {
                parse_interfaces(danm_api::INTERFACES_ANNOTATION, a).map_err(|e| e.to_string())
            }),
            defaults: Vec::new(),
            networks: Vec::new(),
            attached: Vec::new(),
            npwg: Ok(Vec::new()),
            attached_nads: Vec::new(),
            last_failure: None,
        }
    }

    #[test]
    fn npwg_attachments_are_named_as_nads_checked_for_existence_and_their_danmeps() {
        let nad = |qualified: &str, exists: bool| NadFacts {
            qualified: qualified.into(),
            exists,
        };
        let mut f = facts(Some(r#"[{"network":"n"}]"#));
        f.networks = vec![network(NetworkKind::DanmNet, "n", None, None)];
        f.attached = vec![NetworkRef::new(NetworkKind::DanmNet, "n")];
        f.npwg = Ok(vec![nad("demo/net-a", true), nad("other/net-b", false)]);
        let d = diagnose(&f);
        assert_eq!(
            d.requested,
            [
                "DanmNet demo/n",
                "NetworkAttachmentDefinition demo/net-a",
                "NetworkAttachmentDefinition other/net-b"
            ]
        );
        assert_eq!(
            d.problems,
            [Problem::UnknownNetwork {
                network: "NetworkAttachmentDefinition other/net-b".into(),
                namespace: "demo".into()
            }]
        );
        assert!(
            d.advice
                .starts_with("create NetworkAttachmentDefinition other/net-b"),
            "{}",
            d.advice
        );
        // Both NADs exist; one has its DanmEp.
        f.npwg = Ok(vec![nad("demo/net-a", true), nad("other/net-b", true)]);
        f.attached_nads = vec!["other/net-b".into()];
        assert_eq!(
            diagnose(&f).problems,
            [Problem::NotAttached {
                network: "NetworkAttachmentDefinition demo/net-a".into()
            }]
        );
        f.attached_nads.push("demo/net-a".into());
        let d = diagnose(&f);
        assert!(!d.found_problem(), "{d:?}");
        assert!(render(&d).contains(
            "requests: DanmNet demo/n, NetworkAttachmentDefinition demo/net-a, NetworkAttachmentDefinition other/net-b"
        ));
        // An NPWG annotation that does not parse.
        f.npwg = Err("element 0 field mac: bad".into());
        let d = diagnose(&f);
        assert_eq!(
            d.problems,
            [Problem::BadAnnotation {
                key: "k8s.v1.cni.cncf.io/networks".into(),
                error: "element 0 field mac: bad".into()
            }]
        );
        assert!(d.advice.contains("network selection elements"), "{}", d.advice);
    }

    fn network(
        kind: NetworkKind,
        name: &str,
        allowed: Option<&[&str]>,
        v4: Option<PoolUse>,
    ) -> (NetworkRef, NetworkFacts) {
        (
            NetworkRef::new(kind, name),
            NetworkFacts {
                spec: NetworkSpec {
                    allowed_tenants: allowed.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
                    ..NetworkSpec::default()
                },
                ipv4: v4,
                ipv6: None,
            },
        )
    }

    #[test]
    fn no_annotation_and_no_default_network_says_to_add_one() {
        let d = diagnose(&facts(None));
        assert_eq!(d.problems, [Problem::NoDefaultNetwork]);
        assert!(
            d.advice
                .contains("create a DanmNet named \"default\" in namespace demo"),
            "{}",
            d.advice
        );
        assert!(d.found_problem());
    }

    #[test]
    fn no_annotation_uses_the_default_network_in_danms_order() {
        let mut f = facts(None);
        f.defaults = vec![NetworkKind::ClusterNetwork, NetworkKind::TenantNetwork];
        f.networks = vec![network(NetworkKind::TenantNetwork, "default", None, None)];
        let d = diagnose(&f);
        assert_eq!(d.requested, ["TenantNetwork demo/default"]);
        assert_eq!(
            d.problems,
            [Problem::NotAttached {
                network: "TenantNetwork demo/default".into()
            }]
        );
    }

    #[test]
    fn an_unknown_network_is_named_with_its_kind_and_namespace() {
        let d = diagnose(&facts(Some(r#"[{"network":"nosuch","ip":"dynamic"}]"#)));
        assert_eq!(
            d.problems,
            [Problem::UnknownNetwork {
                network: "DanmNet demo/nosuch".into(),
                namespace: "demo".into()
            }]
        );
        assert!(d.advice.starts_with("create DanmNet demo/nosuch"), "{}", d.advice);
    }

    #[test]
    fn allowed_tenants_refuse_a_namespace_that_is_not_listed() {
        let mut f = facts(Some(r#"[{"clusterNetwork":"shared","ip":"dynamic"}]"#));
        f.networks = vec![network(
            NetworkKind::ClusterNetwork,
            "shared",
            Some(&["team-a"]),
            None,
        )];
        let d = diagnose(&f);
        assert_eq!(
            d.problems,
            [Problem::NotAllowed {
                network: "ClusterNetwork shared".into(),
                namespace: "demo".into(),
                allowed_tenants: vec!["team-a".into()]
            }]
        );
        assert_eq!(
            d.problems[0].to_string(),
            "ClusterNetwork shared does not allow namespace demo: spec.AllowedTenants is [team-a]"
        );
        // The same list on a DanmNet means nothing (the webhook refuses it there).
        let mut f = facts(Some(r#"[{"network":"n"}]"#));
        f.networks = vec![network(NetworkKind::DanmNet, "n", Some(&["team-a"]), None)];
        f.attached = vec![NetworkRef::new(NetworkKind::DanmNet, "n")];
        assert!(!diagnose(&f).found_problem());
    }

    #[test]
    fn an_exhausted_pool_is_reported_with_its_use_and_the_cni_failure_after_it() {
        let mut f = facts(Some(r#"[{"network":"small","ip":"dynamic"}]"#));
        f.networks = vec![network(
            NetworkKind::DanmNet,
            "small",
            None,
            Some(PoolUse::new(2, 2)),
        )];
        f.last_failure = Some(Failure {
            time: "2025-01-01T00:00:00Z".into(),
            count: 3,
            message: "IP address reservation failed".into(),
        });
        let d = diagnose(&f);
        assert_eq!(d.problems.len(), 2, "{d:?}");
        assert_eq!(
            d.problems[0].to_string(),
            "the IPv4 pool of DanmNet demo/small is exhausted: 2/2 [##########]"
        );
        assert!(matches!(d.problems[1], Problem::CniFailed(_)));
        assert!(
            d.problems[1]
                .to_string()
                .contains("failed 3 times, last at 2025-01-01T00:00:00Z: IP address reservation failed")
        );
        assert!(
            d.advice.starts_with("free addresses of DanmNet demo/small"),
            "{}",
            d.advice
        );
        // A full pool does not explain anything when the pod already has its address there.
        f.attached = vec![NetworkRef::new(NetworkKind::DanmNet, "small")];
        f.last_failure = None;
        assert!(!diagnose(&f).found_problem());
    }

    #[test]
    fn a_recovered_failure_is_a_note_and_a_bad_annotation_a_problem() {
        let mut f = facts(Some(r#"[{"network":"n"}]"#));
        f.networks = vec![network(NetworkKind::DanmNet, "n", None, None)];
        f.attached = vec![NetworkRef::new(NetworkKind::DanmNet, "n")];
        f.last_failure = Some(Failure {
            time: "t".into(),
            count: 1,
            message: "boom".into(),
        });
        let d = diagnose(&f);
        assert!(!d.found_problem());
        assert!(d.note.as_deref().unwrap().contains("boom"));
        assert!(render(&d).ends_with(
            "what to do: nothing to do: every requested network exists, admits the pod and has its DanmEp\n"
        ));

        let d = diagnose(&facts(Some("{")));
        assert!(
            matches!(&d.problems[0], Problem::BadAnnotation { key, .. } if key == "danm.k8s.io/interfaces")
        );
    }

    #[test]
    fn a_failure_event_alone_explains_a_missing_interface() {
        let mut f = facts(Some(r#"[{"network":"n"}]"#));
        f.networks = vec![network(NetworkKind::DanmNet, "n", None, None)];
        f.last_failure = Some(Failure {
            time: "t".into(),
            count: 1,
            message: "no such device".into(),
        });
        let d = diagnose(&f);
        assert_eq!(d.problems.len(), 1);
        let text = render(&d);
        assert!(
            text.contains("problem: the CNI's ADD failed 1 time, last at t: no such device"),
            "{text}"
        );
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("what to do: read the CNI error above"),
            "{text}"
        );
    }
}
