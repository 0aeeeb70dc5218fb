//! What `kubectl danm` reads from the cluster: networks and NADs, the blocks of blocks-mode networks, a pod, its
//! DanmEps and the CNI's failure events, and the facts `why` needs. Every error names the objects it was reading.

use danm_api::{DanmEp, Network, NetworkAttachmentDefinition, NetworkKind};
use danm_core::annotation::npwg::{NETWORKS_ANNOTATION, parse_networks};
use danm_core::annotation::{NetworkRef, find_annotation, parse_interfaces};
use danm_core::ipam::blocks::IpamMode;
use danm_core::resolve::{DEFAULT_NETWORK_NAME, DEFAULT_ORDER, resolve_default};
use danm_ipam::{ApiError, Ipam, IpamConfig, IpamStore};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

use super::KubectlError;
use super::networks::{NetworkView, nad_row, network_view};
use super::why::{FAILURE_REASON, Facts, Failure, NadFacts, NetworkFacts};

/// Which namespaces a listing covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    fn describe(&self, what: &str) -> String {
        match self {
            Scope::Namespace(ns) => format!("{what} in namespace {ns}"),
            Scope::All => format!("{what} in all namespaces"),
        }
    }
}

/// The IPAM mode of networks that neither name one nor carry a bitmap. It is the CNI config's `ipamMode`, which a
/// client cannot read; danm's default is `blocks`, and the webhook records the mode on every network it admits.
const DEFAULT_MODE: IpamMode = IpamMode::Blocks;

/// Every danm network the scope sees (ClusterNetworks always: every namespace may use them), with its pools' use.
pub async fn networks(client: &kube::Client, scope: &Scope) -> Result<Vec<NetworkView>, KubectlError> {
    let mut views = Vec::new();
    for kind in [
        NetworkKind::DanmNet,
        NetworkKind::TenantNetwork,
        NetworkKind::ClusterNetwork,
    ] {
        let api: Api<Network> = match (kind.namespaced(), scope) {
            (true, Scope::Namespace(ns)) => Api::namespaced_with(client.clone(), ns, &kind),
            _ => Api::all_with(client.clone(), &kind),
        };
        let what = if kind.namespaced() {
            scope.describe(&format!("{kind}s"))
        } else {
            format!("{kind}s")
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| ApiError::from_kube(what, e))?;
        for mut network in list.items {
            if network.kind.is_empty() {
                // An item may come without its kind; the list's kind is the network's.
                network.kind = kind.as_str().to_owned();
            }
            views.push(view(client, network).await?);
        }
    }
    Ok(views)
}

/// The row and maps of one network, reading its blocks when it is in blocks mode.
async fn view(client: &kube::Client, network: Network) -> Result<NetworkView, KubectlError> {
    let blocks = match super::networks::mode_of(&network, DEFAULT_MODE) {
        Ok(IpamMode::Blocks) => {
            let config = IpamConfig {
                default_mode: DEFAULT_MODE,
                ..IpamConfig::default()
            };
            Ipam::new(client, "", config).block_stats(&network).await?
        }
        _ => Vec::new(),
    };
    Ok(network_view(&network, DEFAULT_MODE, &blocks))
}

/// The NADs the scope sees; `None` when the cluster has no NetworkAttachmentDefinition CRD.
pub async fn nads(
    client: &kube::Client,
    scope: &Scope,
) -> Result<Option<Vec<super::networks::NetworkRow>>, KubectlError> {
    let api: Api<NetworkAttachmentDefinition> = match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items.iter().map(nad_row).collect())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(ApiError::from_kube(scope.describe("NetworkAttachmentDefinitions"), e).into()),
    }
}

/// The pod, or an error naming it.
pub async fn pod(client: &kube::Client, namespace: &str, name: &str) -> Result<Pod, KubectlError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|e| ApiError::from_kube(format!("Pod {namespace}/{name}"), e))?
        .ok_or_else(|| KubectlError::NoPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
}

/// The DanmEps of the pod: those recording its UID (or, from a writer that recorded none, its name).
pub async fn danmeps(client: &kube::Client, pod: &Pod) -> Result<Vec<DanmEp>, KubectlError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<DanmEp> = Api::namespaced(client.clone(), &ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ApiError::from_kube(format!("DanmEps in namespace {ns}"), e))?;
    Ok(list
        .items
        .into_iter()
        .filter(|ep| {
            let s = &ep.spec;
            if !uid.is_empty() && !s.pod_uid.is_empty() {
                s.pod_uid == uid
            } else {
                s.pod == name
            }
        })
        .collect())
}

/// The pod's `DanmAddFailed` events (core/v1, involvedObject = the pod): the last one's time and message, and how
/// many failures they record in all (the CNI writes one event per failed ADD; another writer may count repeats).
pub async fn last_failure(client: &kube::Client, pod: &Pod) -> Result<Option<Failure>, KubectlError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let list = api
        .list(&params)
        .await
        .map_err(|e| ApiError::from_kube(format!("Events of Pod {ns}/{name}"), e))?;
    let failures: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(FAILURE_REASON))
        .filter(|e| {
            let o = &e.involved_object;
            o.kind.as_deref().is_none_or(|k| k == "Pod")
                && o.name.as_deref() == Some(name.as_str())
                && (uid.is_empty() || o.uid.as_deref().is_none_or(|u| u.is_empty() || u == uid))
        })
        .collect();
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    let count: i32 = failures.iter().map(|e| e.count.unwrap_or(1).max(1)).sum();
    Ok(failures.iter().max_by_key(|e| when(e)).map(|last| Failure {
        time: when(last).map(|t| t.to_string()).unwrap_or_default(),
        count,
        message: last.message.clone().unwrap_or_default(),
    }))
}

/// Gathers what `why` looks at for the pod.
pub async fn facts(client: &kube::Client, pod: &Pod) -> Result<Facts, KubectlError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let found = find_annotation(&annotations);
    let requests = match found {
        None => Ok(Vec::new()),
        Some((key, value)) => parse_interfaces(key, value).map_err(|e| e.to_string()),
    };
    let mut defaults = Vec::new();
    for kind in DEFAULT_ORDER {
        if client
            .get_network(kind, &ns, DEFAULT_NETWORK_NAME)
            .await?
            .is_some()
        {
            defaults.push(kind);
        }
    }
    let refs: Vec<NetworkRef> = match &requests {
        Ok(r) if r.is_empty() => resolve_default(|k| defaults.contains(&k))
            .map(|r| vec![r.network])
            .unwrap_or_default(),
        Ok(r) => r.iter().map(|r| r.network.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let mut networks: Vec<(NetworkRef, NetworkFacts)> = Vec::new();
    for r in refs {
        if networks.iter().any(|(n, _)| *n == r) {
            continue;
        }
        if let Some(network) = client.get_network(r.kind, &ns, &r.name).await? {
            let v = view(client, network.clone()).await?;
            networks.push((
                r,
                NetworkFacts {
                    spec: network.spec,
                    ipv4: v.row.ipv4,
                    ipv6: v.row.ipv6,
                },
            ));
        }
    }
    // The NPWG attachments: the NADs the annotation selects, and whether each exists.
    let npwg = match annotations.get(NETWORKS_ANNOTATION) {
        None => Ok(Vec::new()),
        Some(value) => match parse_networks(value) {
            Err(e) => Err(e.to_string()),
            Ok(selections) => {
                let mut nads = Vec::new();
                for sel in selections {
                    let nad_ns = sel.nad_namespace(&ns).to_owned();
                    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &nad_ns);
                    let exists = api
                        .get_opt(&sel.name)
                        .await
                        .map_err(|e| {
                            KubectlError::from(ApiError::from_kube(
                                format!("NetworkAttachmentDefinition {nad_ns}/{}", sel.name),
                                e,
                            ))
                        })?
                        .is_some();
                    nads.push(NadFacts {
                        qualified: sel.qualified_name(&ns),
                        exists,
                    });
                }
                Ok(nads)
            }
        },
    };
    let eps = danmeps(client, pod).await?;
    let attached_nads = eps
        .iter()
        .filter(|ep| ep.spec.api_type == danm_api::nad::NAD_KIND)
        .map(|ep| ep.spec.network_name.clone())
        .collect();
    let attached = eps
        .iter()
        .filter(|ep| ep.spec.api_type != danm_api::nad::NAD_KIND)
        .map(|ep| {
            let kind = if ep.spec.api_type.is_empty() {
                NetworkKind::DanmNet
            } else {
                ep.spec.api_type.parse().unwrap_or(NetworkKind::DanmNet)
            };
            NetworkRef::new(kind, ep.spec.network_name.clone())
        })
        .collect();
    Ok(Facts {
        namespace: ns,
        pod: name,
        annotation: found.map(|(k, _)| k.to_owned()),
        requests,
        defaults,
        networks,
        attached,
        npwg,
        attached_nads,
        last_failure: last_failure(client, pod).await?,
    })
}
