//! NPWG attachments (behaviour §2.1): the pod annotation `k8s.v1.cni.cncf.io/networks` resolved to
//! NetworkAttachmentDefinitions whose CNI config is delegated like a static network's, with danm's IPAM when the
//! config asks for it (`"ipam": {"type": "danm", ...}`) and addresses bound to an IPAMClaim when the element names
//! one; and the teardown of such an attachment's DanmEp.
//!
//! A NAD attachment's DanmEp has `apiType: NetworkAttachmentDefinition` and `NetworkName: <namespace>/<nad>` (a name
//! no network object can have, so nothing mistakes it for one); when danm's IPAM allocated, the annotation
//! [`IPAM_NETWORK_ANNOTATION`] names the pool network, and [`IPAM_CLAIM_ANNOTATION`] the claim holding the addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use danm_api::nad::RESOURCE_NAME_ANNOTATION;
use danm_api::{
    DanmEp, DanmEpInterface, DanmEpSpec, IpamClaim, Network, NetworkAttachmentDefinition, NetworkKind,
    OwnerPod, labels,
};
use danm_core::annotation::NetworkRef;
use danm_core::annotation::npwg::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelection, parse_networks,
};
use danm_core::cni::{AttachmentResult, CniError, codes};
use danm_core::ipam::IpRequest;
use danm_core::ipam::blocks::IpamMode;
use danm_core::resolve::check_allowed_tenants;
use serde_json::{Map, Value, json};

use crate::add::PodInfo;
use crate::context::Ctx;
use crate::delegate::{self, Chain};
use crate::devices::DevicePools;
use crate::error::{Error, InterfaceFailure};
use crate::ipam::{self, Reserved, is_real};
use crate::journal::{Journal, Undo};
use crate::teardown::Teardown;

/// The DanmEp `apiType` of an NPWG attachment.
pub const NAD_API_TYPE: &str = danm_api::nad::NAD_KIND;
/// On a NAD attachment's DanmEp: the network danm's IPAM allocated from, `<Kind>/<namespace>/<name>`.
pub const IPAM_NETWORK_ANNOTATION: &str = danm_api::annotations::IPAM_NETWORK;
/// On a NAD attachment's DanmEp: the IPAMClaim (in the pod's namespace) that holds the addresses.
pub const IPAM_CLAIM_ANNOTATION: &str = danm_api::annotations::IPAM_CLAIM;
/// On a NAD attachment's DanmEp: what the element added to the NAD's config, `{"runtimeConfig": {...}, "cni":
/// {...}}` (its capability arguments and `args.cni`), so CHECK and DEL give the plugins the config ADD gave them.
pub const ELEMENT_ARGS_ANNOTATION: &str = "danm.k8s.io/npwg-args";
/// On a NAD attachment's DanmEp: the gateways of the element's `default-route` (comma-separated), whose default
/// routes the pod got through this interface instead of danm's (so CHECK looks for them here).
pub const DEFAULT_ROUTE_ANNOTATION: &str = "danm.k8s.io/default-route";
/// The `ipam.type` of a NAD config that asks for danm's IPAM.
pub const DANM_IPAM_TYPE: &str = "danm";

/// One NPWG interface to set up.
#[derive(Clone, Debug)]
pub struct NpwgPlan {
    pub selection: NetworkSelection,
    /// `<namespace>/<nad>`: network-status's name and the DanmEp's `NetworkName`.
    pub qualified: String,
    pub ifname: String,
    /// The NAD's config with the element's runtimeConfig and `args.cni`; its danm IPAM not yet replaced.
    pub chain: Chain,
    /// The pool network, when the config asks for danm's IPAM.
    pub pool: Option<Network>,
    pub ip4: IpRequest,
    pub ip6: IpRequest,
    /// The claim, when the element names one (it implies danm's IPAM in blocks mode).
    pub claim: Option<IpamClaim>,
    /// The DanmEp's name (the addresses' owner, unless a claim holds them).
    pub ep_name: String,
    /// The device-plugin resource the NAD names (`k8s.v1.cni.cncf.io/resourceName`).
    pub resource: Option<String>,
    /// The device taken from the pod's allocation of `resource` ([`assign_devices`]).
    pub device_id: Option<String>,
}

impl NpwgPlan {
    /// `NetworkAttachmentDefinition:<namespace>/<nad>`, as failures name it.
    pub fn label(&self) -> String {
        format!("{NAD_API_TYPE}:{}", self.qualified)
    }

    /// Who owns the addresses: the claim (`claim:<ns>/<name>`) or the DanmEp.
    fn owner(&self) -> String {
        match &self.claim {
            Some(claim) => claim.owner(),
            None => self.ep_name.clone(),
        }
    }
}

fn invalid(pod: &PodInfo, reason: impl std::fmt::Display) -> Error {
    Error::Cni(CniError::new(
        codes::INVALID_POD_REQUEST,
        format!("pod {}/{}: {reason}", pod.namespace, pod.name),
    ))
}

/// The pod's NPWG interfaces: parsed, named (`interface`, else `net<i+1>` as Multus numbers them), checked against
/// the names danm's own interfaces took (`taken`: name and network), and resolved to their NADs, pool networks and
/// claims. Every unresolvable element is reported.
pub async fn plan(
    ctx: &Ctx,
    pod: &PodInfo,
    annotations: &BTreeMap<String, String>,
    taken: &[(String, String)],
) -> Result<Vec<NpwgPlan>, Error> {
    if annotations.contains_key(DEFAULT_NETWORK_ANNOTATION) {
        return Err(invalid(
            pod,
            format!(
                "annotation {DEFAULT_NETWORK_ANNOTATION} is not supported: danm sets up the pod's eth0 from \
                 danm.k8s.io/interfaces or the namespace's default network; remove the annotation"
            ),
        ));
    }
    let Some(value) = annotations.get(NETWORKS_ANNOTATION) else {
        return Ok(Vec::new());
    };
    let selections = parse_networks(value).map_err(|e| invalid(pod, e))?;
    if selections.is_empty() {
        return Ok(Vec::new());
    }

    // Names first: a collision is the pod's mistake, whatever the NADs say.
    let mut used: Vec<(String, String)> = taken.to_vec();
    let mut names = Vec::new();
    for sel in &selections {
        let ifname = sel
            .interface
            .clone()
            .unwrap_or_else(|| format!("net{}", sel.index + 1));
        let label = format!("{NAD_API_TYPE}:{}", sel.qualified_name(&pod.namespace));
        if let Some((_, other)) = used.iter().find(|(n, _)| *n == ifname) {
            return Err(invalid(
                pod,
                format!("interface name:\"{ifname}\" of network:{label} is already used by network:{other}"),
            ));
        }
        used.push((ifname.clone(), label));
        names.push(ifname);
    }
    // One default route per family: two elements asking for one are the pod's mistake.
    for v6 in [false, true] {
        let asking: Vec<&NetworkSelection> = selections
            .iter()
            .filter(|s| s.default_route.iter().any(|g| g.is_ipv6() == v6))
            .collect();
        if let [first, second, ..] = asking.as_slice() {
            return Err(invalid(
                pod,
                format!(
                    "annotation {NETWORKS_ANNOTATION}: elements {} and {} both ask for the default {} route \
                     (field default-route); only one element may",
                    first.index,
                    second.index,
                    if v6 { "IPv6" } else { "IPv4" }
                ),
            ));
        }
    }

    let fetched = futures::future::join_all(selections.iter().map(|s| resolve(ctx, pod, s.clone()))).await;
    let mut plans = Vec::new();
    let mut failures = Vec::new();
    for ((sel, ifname), got) in selections.iter().zip(names).zip(fetched) {
        match got {
            Ok(mut plan) => {
                plan.ifname = ifname;
                plans.push(plan);
            }
            Err(error) => failures.push(InterfaceFailure {
                network: format!("{NAD_API_TYPE}:{}", sel.qualified_name(&pod.namespace)),
                interface: ifname,
                error,
            }),
        }
    }
    if failures.is_empty() {
        Ok(plans)
    } else {
        Err(Error::Interfaces(failures))
    }
}

/// One element: its NAD, the NAD's config, the pool network and the claim.
async fn resolve(ctx: &Ctx, pod: &PodInfo, selection: NetworkSelection) -> Result<NpwgPlan, Error> {
    let nad_ns = selection.nad_namespace(&pod.namespace).to_owned();
    let qualified = selection.qualified_name(&pod.namespace);
    let unavailable = |msg: String| Error::Cni(CniError::new(codes::NETWORK_UNAVAILABLE, msg));
    let nad = ctx.api.get_nad(&nad_ns, &selection.name).await?.ok_or_else(|| {
        unavailable(format!(
            "NetworkAttachmentDefinition {} in namespace {nad_ns} requested by pod {}/{} does not exist \
                 (or its namespace does not)",
            selection.name, pod.namespace, pod.name
        ))
    })?;
    let chain = nad_chain(&nad, &selection, ctx.version.as_str())?;
    let pool_ref = danm_ipam_ref(&chain).map_err(|reason| bad_config(&nad, reason))?;
    let pool = match &pool_ref {
        None => None,
        Some(reference) => {
            let network = ctx
                .api
                .get_network(reference.kind, &nad_ns, &reference.name)
                .await?
                .ok_or_else(|| {
                    unavailable(format!(
                        "requested network:{} of type:{} in namespace:{nad_ns} (danm IPAM of \
                         NetworkAttachmentDefinition {qualified}) does not exist",
                        reference.name, reference.kind
                    ))
                })?;
            check_allowed_tenants(reference, &network.spec, &pod.name, &pod.namespace)
                .map_err(|e| Error::Cni(e.into()))?;
            // Either mode: the blocks record the owner (the DanmEp, or the claim); in bitmap mode the reconciler
            // counts the addresses of DanmEps naming the pool (IPAM_NETWORK_ANNOTATION) and of claims as held.
            Some(network)
        }
    };
    let (ip4, ip6) = requests(&selection, pool.as_ref()).map_err(|reason| invalid(pod, reason))?;
    let claim = match &selection.ipam_claim_reference {
        None => None,
        Some(name) => {
            if pool.is_none() {
                return Err(invalid(
                    pod,
                    format!(
                        "ipam-claim-reference {name} needs danm's IPAM, but NetworkAttachmentDefinition \
                         {qualified} has no \"ipam\": {{\"type\": \"danm\", ...}}"
                    ),
                ));
            }
            Some(ctx.api.get_claim(&pod.namespace, name).await?.ok_or_else(|| {
                unavailable(format!(
                    "IPAMClaim {}/{name} requested by pod {} does not exist",
                    pod.namespace, pod.name
                ))
            })?)
        }
    };
    Ok(NpwgPlan {
        selection,
        qualified,
        ifname: String::new(),
        chain,
        pool,
        ip4,
        ip6,
        claim,
        ep_name: uuid::Uuid::new_v4().to_string(),
        resource: nad.resource_name().map(str::to_owned),
        device_id: None,
    })
}

/// The key a device ID is passed to a NAD's plugin under, as Multus passes it.
pub const DEVICE_ID_KEY: &str = "deviceID";

/// Gives each plan whose NAD names a resource (`k8s.v1.cni.cncf.io/resourceName`) a device of the pod's allocation
/// of that resource, as danm's own device pools do: the last one left, after danm's own interfaces took theirs, so
/// no two interfaces of the pod share a device. The device goes to the NAD's (first) plugin as `deviceID`, as Multus
/// passes it. A pod without a free device of the resource is refused (107), naming the NAD, the pod and the resource;
/// every such interface is reported.
pub fn assign_devices(pod: &PodInfo, plans: &mut [NpwgPlan], pools: &mut DevicePools) -> Result<(), Error> {
    let mut failures = Vec::new();
    for plan in plans.iter_mut() {
        let Some(resource) = plan.resource.clone() else {
            continue;
        };
        match pools.take(&resource) {
            Ok(device) => {
                set_device_id(&mut plan.chain, &device);
                plan.device_id = Some(device);
            }
            Err(e) => failures.push(InterfaceFailure {
                network: plan.label(),
                interface: plan.ifname.clone(),
                error: Error::Cni(CniError::new(
                    codes::INVALID_POD_REQUEST,
                    format!(
                        "NetworkAttachmentDefinition {} (interface {}) needs a device of resource {resource} \
                         (its {RESOURCE_NAME_ANNOTATION}), but pod {}/{} has no free device of it: {e}; the pod's \
                         containers must request one {resource} per such attachment",
                        plan.qualified, plan.ifname, pod.namespace, pod.name
                    ),
                )),
            }),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Interfaces(failures))
    }
}

/// Puts `device` in the chain's first plugin as `deviceID` (a single plugin's config, or a conflist's first plugin,
/// as Multus does).
fn set_device_id(chain: &mut Chain, device: &str) {
    if let Some(first) = chain.plugins.first_mut().and_then(Value::as_object_mut) {
        first.insert(DEVICE_ID_KEY.to_owned(), Value::String(device.to_owned()));
    }
}

fn bad_config(nad: &NetworkAttachmentDefinition, reason: impl std::fmt::Display) -> Error {
    Error::Cni(CniError::new(
        codes::INVALID_NETWORK_CONFIG,
        format!(
            "NetworkAttachmentDefinition {}/{}: spec.config {reason}",
            nad.metadata.namespace.as_deref().unwrap_or_default(),
            nad.metadata.name.as_deref().unwrap_or_default()
        ),
    ))
}

/// The NAD's config as a chain (one plugin, or a conflist's `plugins`), each plugin given the element's
/// capability arguments it declares in `capabilities` as `runtimeConfig` (as libcni does) and `args.cni`.
pub fn nad_chain(
    nad: &NetworkAttachmentDefinition,
    selection: &NetworkSelection,
    version: &str,
) -> Result<Chain, Error> {
    let mut chain = config_chain(nad, version)?;
    apply_element_args(&mut chain, &selection.runtime_config(), &selection.cni_args());
    Ok(chain)
}

/// Gives each plugin of `chain` the capability arguments (`runtime`) it declares in `capabilities` as its
/// `runtimeConfig`, as libcni does, and `args` as its `args.cni`.
fn apply_element_args(chain: &mut Chain, runtime: &Map<String, Value>, args: &Map<String, Value>) {
    for plugin in chain.plugins.iter_mut().filter_map(Value::as_object_mut) {
        let declared: Vec<String> = plugin
            .get("capabilities")
            .and_then(Value::as_object)
            .map(|c| {
                c.iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let given: Map<String, Value> = runtime
            .iter()
            .filter(|(k, _)| declared.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !given.is_empty() {
            let rc = plugin.entry("runtimeConfig").or_insert_with(|| json!({}));
            if let Some(rc) = rc.as_object_mut() {
                rc.extend(given);
            }
        }
        if !args.is_empty() {
            let a = plugin.entry("args").or_insert_with(|| json!({}));
            if let Some(a) = a.as_object_mut() {
                let cni = a.entry("cni").or_insert_with(|| json!({}));
                if let Some(cni) = cni.as_object_mut() {
                    cni.extend(args.clone());
                }
            }
        }
    }
}

/// The value of [`ELEMENT_ARGS_ANNOTATION`] for `selection`; `None` when the element adds nothing.
fn element_args_text(selection: &NetworkSelection) -> Option<String> {
    let (runtime, args) = (selection.runtime_config(), selection.cni_args());
    (!runtime.is_empty() || !args.is_empty())
        .then(|| json!({"runtimeConfig": runtime, "cni": args}).to_string())
}

/// The config a NAD attachment's DanmEp was added with: its NAD's config now, the element's additions recorded on
/// the DanmEp, and its addresses in place of danm's IPAM. `Ok(None)`: the NAD is gone.
async fn ep_chain(ctx: &Ctx, ep: &DanmEp) -> Result<Option<Chain>, Error> {
    let ns = ep.metadata.namespace.as_deref().unwrap_or_default();
    let (nad_ns, nad_name) = ep
        .spec
        .network_name
        .split_once('/')
        .unwrap_or((ns, &ep.spec.network_name));
    let Some(nad) = ctx.api.get_nad(nad_ns, nad_name).await? else {
        return Ok(None);
    };
    let mut chain = config_chain(&nad, ctx.version.as_str())?;
    if let Some(text) = ep_annotation(ep, ELEMENT_ARGS_ANNOTATION) {
        let recorded: Value = serde_json::from_str(text).unwrap_or_default();
        let map = |key: &str| {
            recorded
                .get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        apply_element_args(&mut chain, &map("runtimeConfig"), &map("cni"));
    }
    if !ep.spec.interface.device_id.is_empty() {
        set_device_id(&mut chain, &ep.spec.interface.device_id);
    }
    let reserved = Reserved {
        ip4: ep.spec.interface.address.clone(),
        ip6: ep.spec.interface.address_ipv6.clone(),
    };
    Ok(Some(with_addresses(chain, &reserved)))
}

/// The NAD's `spec.config` as a chain, without the element's additions (DEL rebuilds it so).
fn config_chain(nad: &NetworkAttachmentDefinition, version: &str) -> Result<Chain, Error> {
    let value: Value =
        serde_json::from_str(&nad.spec.config).map_err(|e| bad_config(nad, format!("is not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(bad_config(nad, "is not a JSON object"));
    };
    let mut chain = match map.remove("plugins") {
        Some(Value::Array(plugins)) => {
            if plugins.is_empty() || plugins.iter().any(|p| !p.is_object()) {
                return Err(bad_config(nad, "\"plugins\" must be a non-empty list of objects"));
            }
            let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            Chain {
                name: text("name"),
                cni_version: text("cniVersion"),
                plugins,
            }
        }
        Some(_) => return Err(bad_config(nad, "\"plugins\" must be a list")),
        None => {
            if map
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                return Err(bad_config(nad, "has no \"type\""));
            }
            delegate::ensure_version(&mut map, version);
            Chain::single(Value::Object(map))
        }
    };
    if chain.cni_version.is_empty() && chain.plugins.len() > 1 {
        chain.cni_version = version.to_owned();
    }
    Ok(chain)
}

/// The danm network a config's `"ipam": {"type": "danm", "network" | "tenantNetwork" | "clusterNetwork": name}`
/// allocates from (the first plugin whose IPAM is danm's); `None` when no plugin asks for danm's IPAM.
fn danm_ipam_ref(chain: &Chain) -> Result<Option<NetworkRef>, String> {
    let Some(ipam) = chain
        .plugins
        .iter()
        .filter_map(|p| p.get("ipam"))
        .find(|i| i.get("type").and_then(Value::as_str) == Some(DANM_IPAM_TYPE))
    else {
        return Ok(None);
    };
    let refs: Vec<NetworkRef> = [
        ("network", NetworkKind::DanmNet),
        ("tenantNetwork", NetworkKind::TenantNetwork),
        ("clusterNetwork", NetworkKind::ClusterNetwork),
    ]
    .into_iter()
    .filter_map(|(key, kind)| {
        ipam.get(key)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(|n| NetworkRef::new(kind, n))
    })
    .collect();
    match <[NetworkRef; 1]>::try_from(refs) {
        Ok([r]) => Ok(Some(r)),
        Err(refs) => Err(format!(
            "has an ipam of type danm that names {} networks; it must name exactly one with \"network\", \
             \"tenantNetwork\" or \"clusterNetwork\"",
            refs.len()
        )),
    }
}

/// What danm's IPAM is asked for: the element's `ips` (the first of each family, static), else a dynamic address
/// in every family the pool network has a range for.
fn requests(selection: &NetworkSelection, pool: Option<&Network>) -> Result<(IpRequest, IpRequest), String> {
    let Some(pool) = pool else {
        return Ok((IpRequest::Absent, IpRequest::Absent));
    };
    let opts = &pool.spec.options;
    let statics: Vec<std::net::IpAddr> = selection
        .ips
        .iter()
        .filter_map(|ip| ip.split('/').next().and_then(|a| a.parse().ok()))
        .collect();
    let pick = |v6: bool, has_range: bool| match statics.iter().find(|a| a.is_ipv6() == v6) {
        Some(a) => IpRequest::Static(*a),
        None if has_range && statics.is_empty() => IpRequest::Dynamic,
        None => IpRequest::Absent,
    };
    let ip4 = pick(false, !opts.cidr.is_empty());
    let ip6 = pick(true, !opts.net6.is_empty());
    if (ip4 != IpRequest::Absent && opts.cidr.is_empty())
        || (ip6 != IpRequest::Absent && opts.net6.is_empty())
    {
        return Err(format!(
            "ips {:?} asks for a family network {} has no range for",
            selection.ips,
            pool.name()
        ));
    }
    Ok((ip4, ip6))
}

/// Reserves the addresses of the plans that use danm's IPAM, journaling what DanmEps own (a claim's addresses are
/// the claim's: no rollback releases them). Each claim is first bound to the pod (`status.ownerPod`, a conditional
/// write, so of two pods starting together one loses with "try again") and asks again for the addresses in its
/// `status.ips`. Then one batch per pool network (as danm's own interfaces: two reservations at once on one
/// blocks-mode network would each claim a block for this node). A claim given new addresses has them written to
/// its `status.ips`. Returns the addresses in plan order (none for plans without danm's IPAM); every interface that
/// could not be served is reported.
pub async fn reserve(
    ctx: &Ctx,
    pod: &PodInfo,
    plans: &[NpwgPlan],
    journals: &[Journal],
) -> Result<Vec<Reserved>, Error> {
    let failure = |i: usize, error: Error| InterfaceFailure {
        network: plans[i].label(),
        interface: plans[i].ifname.clone(),
        error,
    };
    let bound = futures::future::join_all(plans.iter().map(|plan| async move {
        match &plan.claim {
            Some(claim) => bind_claim(ctx, pod, claim.clone()).await.map(Some),
            None => Ok(None),
        }
    }))
    .await;
    let mut claims: Vec<Option<IpamClaim>> = Vec::new();
    let mut failures = Vec::new();
    for (i, b) in bound.into_iter().enumerate() {
        match b {
            Ok(c) => claims.push(c),
            Err(e) => {
                failures.push(failure(i, e));
                claims.push(None);
            }
        }
    }
    if !failures.is_empty() {
        return Err(Error::Interfaces(failures));
    }

    // What each plan asks for: a claim's addresses again, else the element's request. In bitmap mode a claim's
    // addresses stay set in the pool's bitmap between its pods ("the claim holds it"): a set bit is taken as it is
    // (`kept`; the bitmap records no owner to ask), a clear one is reserved again.
    let mut kept: Vec<Reserved> = plans.iter().map(|_| Reserved::default()).collect();
    let mut asks: Vec<(IpRequest, IpRequest, String)> = Vec::new();
    for ((plan, claim), kept) in plans.iter().zip(&claims).zip(kept.iter_mut()) {
        let (mut ip4, mut ip6) = (plan.ip4, plan.ip6);
        if let (Some(c), Some(pool)) = (claim, &plan.pool) {
            let bitmap = ctx.ipam().mode(pool).ok() == Some(IpamMode::Bitmap);
            let held = |v6: bool| {
                c.status.ips.iter().find_map(|text| {
                    text.split('/')
                        .next()
                        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                        .filter(|a| a.is_ipv6() == v6)
                        .map(|a| (a, text.clone()))
                })
            };
            for (v6, request, kept) in [(false, &mut ip4, &mut kept.ip4), (true, &mut ip6, &mut kept.ip6)] {
                let Some((addr, text)) = held(v6) else {
                    continue;
                };
                if bitmap && danm_core::ipam::release(&pool.spec, &text, "").1 {
                    *request = IpRequest::Absent;
                    *kept = text;
                } else {
                    *request = IpRequest::Static(addr);
                }
            }
        }
        asks.push((ip4, ip6, plan.owner()));
    }

    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate() {
        if let Some(pool) = &plan.pool {
            groups.entry(pool_text(pool)).or_default().push(i);
        }
    }
    let mut out: Vec<Reserved> = plans.iter().map(|_| Reserved::default()).collect();
    for members in groups.into_values() {
        let Some(pool) = plans[members[0]].pool.as_ref() else {
            continue;
        };
        let requests: Vec<ipam::Request<'_>> = members
            .iter()
            .map(|&i| ipam::Request {
                ip4: asks[i].0,
                ip6: asks[i].1,
                owner: &asks[i].2,
            })
            .collect();
        let reserved = match ctx.ipam().reserve(pool, &requests).await {
            Ok((reserved, _)) => reserved,
            Err(ipam::BatchError { index, error }) => {
                // Nothing of the batch is held; the request that could not be served is named, else all share it.
                let error = Error::from(error);
                match index.and_then(|k| members.get(k)) {
                    Some(&i) => failures.push(failure(i, error)),
                    None => {
                        let shared = CniError::new(error.code(), error.to_string());
                        failures.extend(members.iter().map(|&i| failure(i, Error::Cni(shared.clone()))));
                    }
                }
                continue;
            }
        };
        for (&i, mut r) in members.iter().zip(reserved) {
            if is_real(&kept[i].ip4) {
                r.ip4 = kept[i].ip4.clone();
            }
            if is_real(&kept[i].ip6) {
                r.ip6 = kept[i].ip6.clone();
            }
            match &claims[i] {
                None => {
                    if r.holds_addresses() {
                        journals[i].push(Undo::Ips {
                            kind: pool.network_kind().unwrap_or(NetworkKind::DanmNet),
                            namespace: pool.namespace().unwrap_or_default().to_owned(),
                            network: pool.name().to_owned(),
                            ip4: r.ip4.clone(),
                            ip6: r.ip6.clone(),
                            owner: asks[i].2.clone(),
                        });
                    }
                }
                Some(claim) => {
                    if let Err(e) = record_claim_ips(ctx, pool, claim.clone(), &r, &asks[i].2).await {
                        failures.push(failure(i, e));
                        continue;
                    }
                }
            }
            out[i] = r;
        }
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        failures.sort_by_key(|f| plans.iter().position(|p| p.ifname == f.interface));
        Err(Error::Interfaces(failures))
    }
}

/// Writes a claim's addresses to its `status.ips` when they changed. A claim whose status does not show its
/// addresses would get new ones next time, so when the write fails they are given back.
async fn record_claim_ips(
    ctx: &Ctx,
    pool: &Network,
    mut claim: IpamClaim,
    reserved: &Reserved,
    owner: &str,
) -> Result<(), Error> {
    let ips: Vec<String> = [&reserved.ip4, &reserved.ip6]
        .into_iter()
        .filter(|a| is_real(a))
        .cloned()
        .collect();
    if claim.status.ips == ips {
        return Ok(());
    }
    claim.status.ips = ips;
    let Err(e) = ctx.api.replace_claim_status(&claim).await else {
        return Ok(());
    };
    let release = ipam::Release {
        ip4: &reserved.ip4,
        ip6: &reserved.ip6,
        owner,
    };
    if let Err(r) = ctx.ipam().release(pool, &[release]).await {
        tracing::error!(claim = %owner, error = %r, "cannot release a claim's new addresses");
    }
    Err(e.into())
}

/// Makes `pod` the claim's holder. A claim held by another pod that still exists is refused (error 109); one
/// held by a pod that is gone is taken over.
async fn bind_claim(ctx: &Ctx, pod: &PodInfo, mut claim: IpamClaim) -> Result<IpamClaim, Error> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    if let Some(holder) = claim.status.owner_pod.as_ref().map(|o| o.name.clone())
        && !holder.is_empty()
    {
        if holder == pod.name {
            return Ok(claim);
        }
        match ctx.api.get_pod(&pod.namespace, &holder).await {
            Ok(_) => {
                return Err(Error::Cni(CniError::new(
                    codes::IPAM,
                    format!(
                        "IPAMClaim {}/{name} requested by pod {} is in use by pod {holder}, which still exists",
                        pod.namespace, pod.name
                    ),
                )));
            }
            Err(e) if e.is_not_found() => {
                tracing::info!(
                    claim = name,
                    previous = holder,
                    "taking over an IPAMClaim whose pod is gone"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    claim.status.owner_pod = Some(OwnerPod {
        name: pod.name.clone(),
    });
    ctx.api.replace_claim_status(&claim).await.map_err(|e| match e {
        crate::api::ApiError::Conflict { .. } => Error::Cni(CniError::new(
            codes::TRY_AGAIN_LATER,
            format!(
                "IPAMClaim {}/{name} requested by pod {} was bound by someone else at the same time",
                pod.namespace, pod.name
            ),
        )),
        other => other.into(),
    })
}

/// The chain to run for `plan`: its danm IPAM (if any) replaced by the fakeipam block of `reserved`.
fn with_addresses(mut chain: Chain, reserved: &Reserved) -> Chain {
    let block = delegate::fakeipam_block(&reserved.ip4, &reserved.ip6);
    for plugin in chain.plugins.iter_mut().filter_map(Value::as_object_mut) {
        let danm = plugin
            .get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            == Some(DANM_IPAM_TYPE);
        if danm {
            match &block {
                Some(b) => plugin.insert("ipam".into(), b.clone()),
                None => plugin.remove("ipam"),
            };
        }
    }
    chain
}

/// Sets up one NPWG interface: its DanmEp, then the NAD's chain run as a delegate (always a delegate: the NAD's
/// author wrote it for that plugin binary), its result kept for CHECK and DEL.
pub async fn add_interface(
    ctx: &Ctx,
    pod: &PodInfo,
    plan: &NpwgPlan,
    reserved: Reserved,
    journal: &Journal,
) -> Result<AttachmentResult, Error> {
    let mut ep_labels = pod.labels.clone();
    ep_labels.insert(
        labels::CONTAINER_ID.to_owned(),
        labels::container_label(&pod.container_id),
    );
    ep_labels.insert(labels::POD_UID.to_owned(), pod.uid.clone());
    let chain = with_addresses(plan.chain.clone(), &reserved);
    let plugin_type = chain
        .plugins
        .first()
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut ep = DanmEp::new(
        &pod.namespace,
        &plan.ep_name,
        DanmEpSpec {
            network_name: plan.qualified.clone(),
            network_type: plugin_type,
            endpoint_id: plan.ep_name.clone(),
            interface: DanmEpInterface {
                name: plan.ifname.clone(),
                address: reserved.ip4.clone(),
                address_ipv6: reserved.ip6.clone(),
                mac_address: plan.selection.mac.clone().unwrap_or_default(),
                proutes: None,
                proutes6: None,
                device_id: plan.device_id.clone().unwrap_or_default(),
            },
            host: ctx.hostname.clone(),
            pod: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            cid: pod.container_id.clone(),
            netns: pod.netns_path.clone(),
            api_type: NAD_API_TYPE.to_owned(),
        },
    );
    ep.metadata.labels = Some(ep_labels);
    let mut annotations = BTreeMap::new();
    if let Some(pool) = &plan.pool {
        annotations.insert(IPAM_NETWORK_ANNOTATION.to_owned(), pool_text(pool));
    }
    if let Some(args) = element_args_text(&plan.selection) {
        annotations.insert(ELEMENT_ARGS_ANNOTATION.to_owned(), args);
    }
    if !plan.selection.default_route.is_empty() {
        annotations.insert(
            DEFAULT_ROUTE_ANNOTATION.to_owned(),
            gateways_text(&plan.selection.default_route),
        );
    }
    if let Some(claim) = &plan.claim {
        annotations.insert(
            IPAM_CLAIM_ANNOTATION.to_owned(),
            claim.metadata.name.clone().unwrap_or_default(),
        );
    }
    if !annotations.is_empty() {
        ep.metadata.annotations = Some(annotations);
    }
    journal.push(Undo::Ep {
        namespace: pod.namespace.clone(),
        name: plan.ep_name.clone(),
        created: false,
    });
    let mut ep = ctx.api.create_ep(&ep).await?;
    journal.confirm_ep(&plan.ep_name);

    journal.push(Undo::Delegate {
        chain: chain.clone(),
        ifname: plan.ifname.clone(),
    });
    let env = ctx.delegate_env(&pod.netns_path);
    let (result, raw) = delegate::add(&chain, &plan.ifname, &env).await?;
    if let Some(raw) = raw
        && let Err(e) = ctx.results().save(ctx.env.container_id(), &plan.ifname, &raw)
    {
        tracing::warn!(ifname = %plan.ifname, error = %e, "cannot keep the delegate's ADD result");
    }
    // Without danm's IPAM the DanmEp records what the plugin's own IPAM gave (as for static delegates, §4.7).
    if plan.pool.is_none() {
        let last = |v6: bool| {
            result
                .ips
                .iter()
                .rev()
                .find(|i| i.address.is_ipv6() == v6)
                .map(|i| i.address.to_string())
                .unwrap_or_default()
        };
        let (ip4, ip6) = (last(false), last(true));
        if is_real(&ip4) || is_real(&ip6) {
            ep.spec.interface.address = ip4;
            ep.spec.interface.address_ipv6 = ip6;
            ctx.api.replace_ep(&ep).await?;
        }
    }
    Ok(AttachmentResult {
        network: plan.qualified.clone(),
        ifname: plan.ifname.clone(),
        sandbox: pod.netns_path.clone(),
        result,
    })
}

/// An element's `default-route`: the pod's default route of each gateway's family goes through that gateway on
/// the element's interface.
#[derive(Clone, Debug)]
pub struct DefaultRoute {
    /// The element's index in the annotation.
    pub element: usize,
    /// `NetworkAttachmentDefinition:<ns>/<nad>`.
    pub label: String,
    pub ifname: String,
    pub gateways: Vec<IpAddr>,
}

/// The elements that ask for the pod's default route.
pub fn default_routes(plans: &[NpwgPlan]) -> Vec<DefaultRoute> {
    plans
        .iter()
        .filter(|p| !p.selection.default_route.is_empty())
        .map(|p| DefaultRoute {
            element: p.selection.index,
            label: p.label(),
            ifname: p.ifname.clone(),
            gateways: p.selection.default_route.clone(),
        })
        .collect()
}

fn gateways_text(gateways: &[IpAddr]) -> String {
    gateways
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The gateways recorded on a NAD attachment's DanmEp ([`DEFAULT_ROUTE_ANNOTATION`]).
pub fn ep_default_route(ep: &DanmEp) -> Vec<IpAddr> {
    ep_annotation(ep, DEFAULT_ROUTE_ANNOTATION)
        .unwrap_or_default()
        .split(',')
        .filter_map(|g| g.trim().parse().ok())
        .collect()
}

/// Acts on the elements' `default-route` once every interface is up (as Multus does): each gateway must be on the
/// subnet of an address the element's interface got, else the ADD fails (107) naming the element; then every default
/// route of the gateway's family in the pod's main table (the ones danm's or other interfaces installed) is deleted
/// and the default route through the gateway on that interface added. A family without a gateway in the list keeps
/// its routes.
pub async fn set_default_routes(
    ctx: &Ctx,
    pod: &PodInfo,
    routes: &[DefaultRoute],
    attachments: &[AttachmentResult],
) -> Result<(), Error> {
    if routes.is_empty() {
        return Ok(());
    }
    let mut failures = Vec::new();
    for route in routes {
        let subnets: Vec<ipnetwork::IpNetwork> = attachments
            .iter()
            .filter(|a| a.ifname == route.ifname)
            .flat_map(|a| {
                a.result
                    .ips
                    .iter()
                    .filter(|ip| {
                        ip.interface
                            .and_then(|i| a.result.interfaces.get(i))
                            .is_none_or(|iface| iface.name == route.ifname)
                    })
                    .map(|ip| ip.address)
            })
            .collect();
        for gw in &route.gateways {
            if !subnets.iter().any(|net| net.contains(*gw)) {
                let have = subnets
                    .iter()
                    .filter(|n| n.is_ipv6() == gw.is_ipv6())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>();
                let have = if have.is_empty() {
                    format!("it has no {} address", if gw.is_ipv6() { "IPv6" } else { "IPv4" })
                } else {
                    format!("its addresses: {}", have.join(", "))
                };
                failures.push(InterfaceFailure {
                    network: route.label.clone(),
                    interface: route.ifname.clone(),
                    error: invalid(
                        pod,
                        format!(
                            "annotation {NETWORKS_ANNOTATION}: element {} field default-route: gateway {gw} is not \
                             on the subnet of interface {} ({}; {have})",
                            route.element, route.ifname, route.label
                        ),
                    ),
                });
            }
        }
    }
    if !failures.is_empty() {
        return Err(Error::Interfaces(failures));
    }
    let pod_ns = danm_netlink::Netns::path(&pod.netns_path);
    for route in routes {
        for gw in &route.gateways {
            let kernel = |what: String| {
                let (label, ifname) = (route.label.clone(), route.ifname.clone());
                move |e| InterfaceFailure {
                    network: label,
                    interface: ifname,
                    error: Error::kernel(what, e),
                }
            };
            let present = ctx
                .netlink
                .routes(&pod_ns, danm_netlink::TABLE_MAIN)
                .await
                .map_err(kernel("reading the pod's routes".into()))
                .map_err(|f| Error::Interfaces(vec![f]))?;
            for old in present
                .iter()
                .filter(|r| r.dst.prefix() == 0 && r.dst.is_ipv6() == gw.is_ipv6())
            {
                match ctx.netlink.delete_route(&pod_ns, old).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(Error::Interfaces(vec![kernel(format!(
                            "deleting the default route via {:?} dev {:?} for default-route",
                            old.gateway, old.dev
                        ))(e)]));
                    }
                }
            }
            let dst = if gw.is_ipv6() {
                ipnetwork::IpNetwork::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
            } else {
                ipnetwork::IpNetwork::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0)
            }
            .expect("prefix 0 is valid");
            let new = danm_netlink::Route::new(dst).via(*gw).dev(&route.ifname);
            ctx.netlink.add_route(&pod_ns, &new).await.map_err(|e| {
                Error::Interfaces(vec![kernel(format!(
                    "adding the default route via {gw} dev {} (default-route)",
                    route.ifname
                ))(e)])
            })?;
        }
    }
    Ok(())
}

/// `<Kind>/<namespace>/<name>` of a pool network (the namespace empty for ClusterNetworks).
fn pool_text(pool: &Network) -> String {
    format!(
        "{}/{}/{}",
        pool.network_kind().unwrap_or(NetworkKind::DanmNet),
        pool.namespace().unwrap_or_default(),
        pool.name()
    )
}

/// Whether a DanmEp records an NPWG attachment.
pub fn is_npwg(ep: &DanmEp) -> bool {
    ep.spec.api_type == NAD_API_TYPE
}

fn ep_annotation<'a>(ep: &'a DanmEp, key: &str) -> Option<&'a str> {
    ep.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The network danm's IPAM allocated a NAD attachment's addresses from ([`IPAM_NETWORK_ANNOTATION`]); `None`
/// when it used none, or the network is gone.
async fn ep_pool(ctx: &Ctx, ep: &DanmEp) -> Result<Option<Network>, crate::api::ApiError> {
    let Some((kind, pool_ns, name)) = ep.ipam_pool() else {
        return Ok(None);
    };
    let kind = NetworkKind::from_api_type(kind).unwrap_or(NetworkKind::DanmNet);
    ctx.api.get_network(kind, pool_ns, name).await
}

/// What CHECK finds wrong with a NAD attachment besides its link and addresses (checked as danm's own): danm's IPAM
/// no longer holding its addresses for their owner (the DanmEp, or the claim), a NAD that is gone, and the NAD's
/// plugins' own CHECK given the config and the result of ADD.
pub(crate) async fn check(ctx: &Ctx, ep: &DanmEp, netns_path: &str) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let name = &ep.spec.interface.name;
    let ns = ep.metadata.namespace.as_deref().unwrap_or_default();
    if ep_annotation(ep, IPAM_NETWORK_ANNOTATION).is_some() {
        match ep_pool(ctx, ep).await? {
            None => problems.push(format!(
                "{name}: network {} (danm IPAM of NetworkAttachmentDefinition {}) no longer exists",
                ep_annotation(ep, IPAM_NETWORK_ANNOTATION).unwrap_or_default(),
                ep.spec.network_name
            )),
            Some(pool) => {
                let owner = match ep_annotation(ep, IPAM_CLAIM_ANNOTATION) {
                    Some(claim) => danm_api::ipamclaim::claim_owner(ns, claim),
                    None => ep.metadata.name.clone().unwrap_or_default(),
                };
                for addr in [&ep.spec.interface.address, &ep.spec.interface.address_ipv6] {
                    if is_real(addr) && !ctx.ipam().holds(&pool, addr, &owner).await? {
                        problems.push(format!(
                            "{name}: address {addr} is not allocated in network {} for {owner}",
                            pool.name()
                        ));
                    }
                }
            }
        }
    }
    match ep_chain(ctx, ep).await? {
        None => problems.push(format!(
            "{name}: NetworkAttachmentDefinition {} no longer exists",
            ep.spec.network_name
        )),
        Some(chain) => crate::teardown::check_delegated(ctx, ep, &chain, netns_path, &mut problems).await,
    }
    Ok(problems)
}

/// Tears down an NPWG attachment's interface: the delegate DEL of its NAD's chain (rebuilt from the NAD and the
/// element's additions recorded on the DanmEp; a NAD that is gone leaves only the link to delete) and the link. Returns the pool network to release from (none for
/// a claim's addresses, which stay the claim's; the claim's holder is cleared).
pub(crate) async fn teardown(ctx: &Ctx, ep: &DanmEp) -> (Teardown, Vec<Error>) {
    let mut errors = Vec::new();
    let ns = ep.metadata.namespace.clone().unwrap_or_default();
    let iface = &ep.spec.interface;
    let claim = ep_annotation(ep, IPAM_CLAIM_ANNOTATION);
    // The pool: read now; an API failure keeps the DanmEp (it records held addresses).
    let pool = match ep_pool(ctx, ep).await {
        Ok(pool) => pool,
        Err(e) => {
            errors.push(e.into());
            return (Teardown::Keep, errors);
        }
    };
    let netns_path = if ep.spec.netns.is_empty() {
        ctx.env.netns.clone().unwrap_or_default()
    } else {
        ep.spec.netns.clone()
    };
    let pod_ns = danm_netlink::Netns::path(&netns_path);
    let netns_alive = !netns_path.is_empty() && ctx.netlink.netns_exists(&pod_ns).await.unwrap_or(false);
    match ep_chain(ctx, ep).await {
        Ok(Some(chain)) => {
            let (results, cid) = (ctx.results(), crate::teardown::ep_container_id(ctx, ep));
            let added = results.load(cid, &iface.name);
            let env = ctx.delegate_env(&netns_path);
            match delegate::del(&chain, &iface.name, &env, added.as_ref()).await {
                Ok(()) => results.remove(cid, &iface.name),
                Err(e) => errors.push(e),
            }
        }
        Ok(None) => tracing::warn!(
            nad = %ep.spec.network_name,
            "NetworkAttachmentDefinition is gone; cannot run its delegate's DEL"
        ),
        Err(e) => errors.push(e),
    }
    if netns_alive && let Err(e) = ctx.netlink.delete_link_if_exists(&pod_ns, &iface.name).await {
        errors.push(Error::kernel(format!("deleting {}", iface.name), e));
    }
    if let Some(claim) = claim {
        release_claim_holder(ctx, &ns, claim, &ep.spec.pod).await;
        // The addresses are the claim's: nothing to release, the DanmEp can go.
        return (Teardown::Gone, errors);
    }
    match pool {
        Some(net) => (Teardown::Read(Box::new(net)), errors),
        None => (Teardown::Gone, errors),
    }
}

/// Clears a claim's `status.ownerPod` when it still names `pod`, so the next pod may bind it at once (a holder that
/// is gone is taken over anyway). Failures are logged only.
async fn release_claim_holder(ctx: &Ctx, namespace: &str, name: &str, pod: &str) {
    match ctx.api.get_claim(namespace, name).await {
        Ok(Some(mut claim)) if claim.status.owner_pod.as_ref().is_some_and(|o| o.name == pod) => {
            claim.status.owner_pod = None;
            if let Err(e) = ctx.api.replace_claim_status(&claim).await {
                tracing::warn!(claim = name, error = %e, "cannot clear the IPAMClaim's ownerPod");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(claim = name, error = %e, "cannot read the IPAMClaim"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use danm_core::annotation::npwg::parse_networks;

    fn nad(config: Value) -> NetworkAttachmentDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": "n", "namespace": "ns"},
            "spec": {"config": config.to_string()}
        }))
        .unwrap()
    }

    fn selection(annotation: &str) -> NetworkSelection {
        parse_networks(annotation).unwrap().remove(0)
    }

    fn code_and_text(e: Error) -> (u32, String) {
        (e.code(), e.to_string())
    }

    #[test]
    fn a_plugin_gets_only_the_capabilities_it_declares_as_runtime_config_and_the_cni_args() {
        let sel = selection(
            r#"[{"name":"n","ips":["10.1.0.5/24"],"mac":"02:00:00:00:00:01","portMappings":[{"hostPort":1}],
                 "cni-args":{"k":"v"}}]"#,
        );
        let conflist = nad(json!({"cniVersion":"0.4.0","name":"c","plugins":[
            {"type":"a","capabilities":{"ips":true,"mac":false}},
            {"type":"b","capabilities":{"portMappings":true},"runtimeConfig":{"keep":1}},
            {"type":"c"}]}));
        let chain = nad_chain(&conflist, &sel, "1.0.0").unwrap();
        assert_eq!((chain.name.as_str(), chain.cni_version.as_str()), ("c", "0.4.0"));
        assert_eq!(
            chain.plugins[0]["runtimeConfig"],
            json!({"ips":["10.1.0.5/24"]}),
            "mac declared false"
        );
        assert_eq!(
            chain.plugins[1]["runtimeConfig"],
            json!({"keep":1,"portMappings":[{"hostPort":1}]}),
            "added to what the config has"
        );
        assert!(chain.plugins[2].get("runtimeConfig").is_none());
        for plugin in &chain.plugins {
            assert_eq!(
                plugin["args"]["cni"],
                json!({"k":"v","ips":["10.1.0.5/24"],"mac":"02:00:00:00:00:01"})
            );
        }
        // One plugin without cniVersion gets the negotiated one; an element without arguments adds nothing.
        let single = nad_chain(
            &nad(json!({"type":"a","capabilities":{"ips":true}})),
            &selection("n"),
            "1.1.0",
        )
        .unwrap();
        assert_eq!(
            single.plugins,
            [json!({"type":"a","cniVersion":"1.1.0","capabilities":{"ips":true}})]
        );
    }

    #[test]
    fn bad_nad_configs_are_error_7_naming_the_nad_and_the_problem() {
        let cases = [
            (json!("text"), "is not a JSON object"),
            (json!({"name":"x"}), "has no \"type\""),
            (
                json!({"plugins":[]}),
                "\"plugins\" must be a non-empty list of objects",
            ),
            (
                json!({"plugins":[1]}),
                "\"plugins\" must be a non-empty list of objects",
            ),
            (json!({"plugins":{}}), "\"plugins\" must be a list"),
        ];
        for (config, want) in cases {
            let (code, text) =
                code_and_text(nad_chain(&nad(config.clone()), &selection("n"), "1.0.0").unwrap_err());
            assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{config}");
            assert!(
                text.contains("NetworkAttachmentDefinition ns/n: spec.config"),
                "{text}"
            );
            assert!(text.contains(want), "{config}: {text}");
        }
        let mut broken = nad(json!({}));
        broken.spec.config = "{".into();
        let (_, text) = code_and_text(nad_chain(&broken, &selection("n"), "1.0.0").unwrap_err());
        assert!(text.contains("is not JSON"), "{text}");
    }

    #[test]
    fn danms_ipam_names_exactly_one_network_of_any_kind() {
        let chain = |ipam: Value| Chain::single(json!({"type":"x","ipam":ipam}));
        assert_eq!(danm_ipam_ref(&chain(json!({"type":"host-local"}))), Ok(None));
        for (key, kind) in [
            ("network", NetworkKind::DanmNet),
            ("tenantNetwork", NetworkKind::TenantNetwork),
            ("clusterNetwork", NetworkKind::ClusterNetwork),
        ] {
            assert_eq!(
                danm_ipam_ref(&chain(json!({"type":"danm", key:"p"}))),
                Ok(Some(NetworkRef::new(kind, "p")))
            );
        }
        let two =
            danm_ipam_ref(&chain(json!({"type":"danm","network":"a","clusterNetwork":"b"}))).unwrap_err();
        assert!(two.contains("names 2 networks"), "{two}");
        let none = danm_ipam_ref(&chain(json!({"type":"danm","network":""}))).unwrap_err();
        assert!(none.contains("names 0 networks"), "{none}");
    }

    #[test]
    fn danms_ipam_is_replaced_by_the_reserved_addresses_and_other_ipams_are_kept() {
        let chain = Chain {
            name: "c".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![
                json!({"type":"bridge","ipam":{"type":"danm","network":"p"}}),
                json!({"type":"tuning","ipam":{"type":"host-local"}}),
            ],
        };
        let reserved = Reserved {
            ip4: "10.0.0.2/24".into(),
            ip6: "none".into(),
        };
        let out = with_addresses(chain.clone(), &reserved);
        assert_eq!(
            out.plugins[0]["ipam"],
            json!({"type":"fakeipam","ips":[{"ipcidr":"10.0.0.2/24","version":4}]})
        );
        assert_eq!(out.plugins[1]["ipam"], json!({"type":"host-local"}));
        let bare = with_addresses(chain, &Reserved::default());
        assert!(
            bare.plugins[0].get("ipam").is_none(),
            "nothing reserved: no IPAM at all"
        );
    }

    #[test]
    fn requests_are_the_elements_ips_else_dynamic_in_every_family_of_the_pool() {
        let pool = |options: Value| {
            let spec = serde_json::from_value(json!({"NetworkID":"p","Options":options})).unwrap();
            Network::new(NetworkKind::DanmNet, Some("ns"), "p", spec)
        };
        let dual = pool(json!({"cidr":"10.0.0.0/24","net6":"fd00::/64"}));
        let v4 = pool(json!({"cidr":"10.0.0.0/24"}));
        let ip = |s: &str| IpRequest::Static(s.parse().unwrap());
        assert_eq!(
            requests(&selection("n"), None),
            Ok((IpRequest::Absent, IpRequest::Absent))
        );
        assert_eq!(
            requests(&selection("n"), Some(&dual)),
            Ok((IpRequest::Dynamic, IpRequest::Dynamic))
        );
        assert_eq!(
            requests(&selection("n"), Some(&v4)),
            Ok((IpRequest::Dynamic, IpRequest::Absent))
        );
        assert_eq!(
            requests(&selection(r#"[{"name":"n","ips":["10.0.0.9/24"]}]"#), Some(&dual)),
            Ok((ip("10.0.0.9"), IpRequest::Absent)),
            "asked addresses only"
        );
        assert_eq!(
            requests(
                &selection(r#"[{"name":"n","ips":["fd00::9/64","10.0.0.9/24"]}]"#),
                Some(&dual)
            ),
            Ok((ip("10.0.0.9"), ip("fd00::9")))
        );
        let err = requests(&selection(r#"[{"name":"n","ips":["fd00::9/64"]}]"#), Some(&v4)).unwrap_err();
        assert!(err.contains("has no range for"), "{err}");
    }
}
