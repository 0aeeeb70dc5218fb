//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) generated from the Rust types, for `crdgen` and the lab.

use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::{
    DanmEpSpec, DanmIpBlockSpec, InterfaceProfile, IpamClaimSpec, IpamClaimStatus, NadSpec, NetworkKind,
    NetworkSpec,
};

/// The OpenAPI v3 structural schema of `T`, generated as kube-derive does for its own CRDs.
fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.remove("title");
    }
    drop_null_defaults(&mut schema);
    schema
}

/// Removes `default: null` and `null` members of `default` objects (an absent optional field defaults to absent
/// anyway): the API server prunes them from the stored CRD, so `kubectl apply` would see a change on every run.
fn drop_null_defaults(schema: &mut Value) {
    fn without_nulls(v: &mut Value) {
        if let Value::Object(map) = v {
            map.retain(|_, m| !m.is_null());
            map.values_mut().for_each(without_nulls);
        }
    }
    match schema {
        Value::Object(map) => {
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            if let Some(default) = map.get_mut("default") {
                without_nulls(default);
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

fn column(name: &str, ty: &str, path: &str) -> Value {
    json!({"name": name, "type": ty, "jsonPath": path})
}

struct Names<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    plural: &'a str,
    singular: &'a str,
    short: &'a [&'a str],
    namespaced: bool,
}

fn crd(names: Names<'_>, properties: Value, columns: Vec<Value>) -> Value {
    let mut columns = columns;
    columns.push(column("Age", "date", ".metadata.creationTimestamp"));
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", names.plural, names.group)},
        "spec": {
            "group": names.group,
            "names": {
                "kind": names.kind,
                "listKind": format!("{}List", names.kind),
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": names.short,
            },
            "scope": if names.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [{
                "name": names.version,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": properties,
                }},
                "additionalPrinterColumns": columns,
            }],
        }
    })
}

/// The CRD of one network kind. All three share the spec schema.
pub fn network_crd(kind: NetworkKind) -> Value {
    let columns = vec![
        column("NetworkID", "string", ".spec.NetworkID"),
        column("NetworkType", "string", ".spec.NetworkType"),
        column("Host-Device", "string", ".spec.Options.host_device"),
        column("CIDR", "string", ".spec.Options.cidr"),
        column("Net6", "string", ".spec.Options.net6"),
        column("VLAN", "integer", ".spec.Options.vlan"),
        column("VxLAN", "integer", ".spec.Options.vxlan"),
    ];
    crd(
        Names {
            group: crate::GROUP,
            version: crate::VERSION,
            kind: kind.as_str(),
            plural: kind.plural(),
            singular: kind.singular(),
            short: kind.short_names(),
            namespaced: kind.namespaced(),
        },
        json!({"spec": schema_of::<NetworkSpec>()}),
        columns,
    )
}

/// The DanmEp CRD.
pub fn danmep_crd() -> Value {
    let columns = vec![
        column("Pod", "string", ".spec.Pod"),
        column("Interface", "string", ".spec.Interface.Name"),
        column("Network", "string", ".spec.NetworkName"),
        column("Address", "string", ".spec.Interface.Address"),
        column("AddressIPv6", "string", ".spec.Interface.AddressIPv6"),
        column("Host", "string", ".spec.Host"),
    ];
    crd(
        Names {
            group: crate::GROUP,
            version: crate::VERSION,
            kind: "DanmEp",
            plural: "danmeps",
            singular: "danmep",
            short: &["de", "dep"],
            namespaced: true,
        },
        json!({"spec": schema_of::<DanmEpSpec>()}),
        columns,
    )
}

/// The DanmIpBlock CRD (the `blocks` IPAM mode's allocation state).
pub fn ipblock_crd() -> Value {
    let columns = vec![
        column("Network", "string", ".spec.network"),
        column("CIDR", "string", ".spec.cidr"),
        column("Node", "string", ".spec.node"),
    ];
    crd(
        Names {
            group: crate::GROUP,
            version: crate::VERSION,
            kind: "DanmIpBlock",
            plural: "danmipblocks",
            singular: "danmipblock",
            short: &["dib"],
            namespaced: false,
        },
        json!({"spec": schema_of::<DanmIpBlockSpec>()}),
        columns,
    )
}

/// The TenantConfig CRD (no `spec`: `hostDevices` and `networkIds` are top-level).
pub fn tenantconfig_crd() -> Value {
    let profiles = schema_of::<Vec<InterfaceProfile>>();
    let ids = schema_of::<std::collections::BTreeMap<String, String>>();
    crd(
        Names {
            group: crate::GROUP,
            version: crate::VERSION,
            kind: "TenantConfig",
            plural: "tenantconfigs",
            singular: "tenantconfig",
            short: &["tc", "tconf"],
            namespaced: false,
        },
        json!({"hostDevices": profiles, "networkIds": ids}),
        vec![],
    )
}

/// The Network Plumbing WG NetworkAttachmentDefinition CRD, for clusters (and the lab) that lack it.
pub fn nad_crd() -> Value {
    crd(
        Names {
            group: crate::nad::NAD_GROUP,
            version: "v1",
            kind: "NetworkAttachmentDefinition",
            plural: "network-attachment-definitions",
            singular: "network-attachment-definition",
            short: &["net-attach-def"],
            namespaced: true,
        },
        json!({"spec": schema_of::<NadSpec>()}),
        vec![],
    )
}

/// The NPWG IPAMClaim CRD (`k8s.cni.cncf.io/v1alpha1`), with its `status` subresource.
pub fn ipamclaim_crd() -> Value {
    let columns = vec![
        column("Network", "string", ".spec.network"),
        column("Interface", "string", ".spec.interface"),
        column("IPs", "string", ".status.ips"),
        column("Pod", "string", ".status.ownerPod.name"),
    ];
    let mut crd = crd(
        Names {
            group: crate::nad::NAD_GROUP,
            version: crate::ipamclaim::IPAMCLAIM_VERSION,
            kind: "IPAMClaim",
            plural: "ipamclaims",
            singular: "ipamclaim",
            short: &[],
            namespaced: true,
        },
        json!({"spec": schema_of::<IpamClaimSpec>(), "status": schema_of::<IpamClaimStatus>()}),
        columns,
    );
    crd["spec"]["versions"][0]["subresources"] = json!({"status": {}});
    crd
}

/// Every CRD danm ships, with the file name `crdgen` writes it to.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("danmnet.yaml", network_crd(NetworkKind::DanmNet)),
        ("tenantnetwork.yaml", network_crd(NetworkKind::TenantNetwork)),
        ("clusternetwork.yaml", network_crd(NetworkKind::ClusterNetwork)),
        ("danmep.yaml", danmep_crd()),
        ("danmipblock.yaml", ipblock_crd()),
        ("tenantconfig.yaml", tenantconfig_crd()),
        ("network-attachment-definition.yaml", nad_crd()),
        ("ipamclaim.yaml", ipamclaim_crd()),
    ]
}

/// A CRD as the YAML document `crdgen` writes (with a header saying it is generated).
pub fn to_yaml(crd: &Value) -> String {
    let body = serde_yaml::to_string(crd).unwrap_or_default();
    format!("# Generated by `cargo run -p danm-api --bin crdgen`; do not edit.\n{body}")
}
