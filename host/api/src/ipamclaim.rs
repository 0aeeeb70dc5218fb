//! IPAMClaim (`k8s.cni.cncf.io/v1alpha1`, NPWG multi-net spec v1.3): a persistent address binding that outlives the
//! pods using it (behaviour §2.1). danm binds the addresses of an NPWG attachment with an `ipam-claim-reference` to
//! the claim (block owner `claim:<namespace>/<name>`) instead of to the pod's DanmEp.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::or_default;

/// The API version of IPAMClaims.
pub const IPAMCLAIM_VERSION: &str = "v1alpha1";

/// An IPAMClaim object (namespaced; the pod's namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamClaim {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: IpamClaimSpec,
    #[serde(default, deserialize_with = "or_default")]
    pub status: IpamClaimStatus,
}

fn api_version() -> String {
    format!("{}/{IPAMCLAIM_VERSION}", crate::nad::NAD_GROUP)
}
fn kind() -> String {
    "IPAMClaim".to_owned()
}

impl IpamClaim {
    pub fn new(namespace: &str, name: &str, spec: IpamClaimSpec) -> Self {
        IpamClaim {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: IpamClaimStatus::default(),
        }
    }

    /// The block owner of the claim's addresses: `claim:<namespace>/<name>`.
    pub fn owner(&self) -> String {
        claim_owner(
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

/// The block owner of the addresses of claim `namespace/name`.
pub fn claim_owner(namespace: &str, name: &str) -> String {
    format!("{CLAIM_OWNER_PREFIX}{namespace}/{name}")
}

/// What every claim owner starts with (a DanmEp name, a UUID, never does).
pub const CLAIM_OWNER_PREFIX: &str = "claim:";

/// `spec` of an IPAMClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct IpamClaimSpec {
    /// The network (the NAD's CNI config `name`) the claim is for.
    #[serde(deserialize_with = "or_default")]
    pub network: String,
    /// The pod interface the claim is for.
    #[serde(deserialize_with = "or_default")]
    pub interface: String,
}

/// `status` of an IPAMClaim, written by the CNI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct IpamClaimStatus {
    /// The claim's addresses, `ip/prefix`.
    #[serde(deserialize_with = "or_default")]
    pub ips: Vec<String>,
    /// The pod that holds the claim now; absent when no pod does.
    #[serde(rename = "ownerPod", skip_serializing_if = "Option::is_none")]
    pub owner_pod: Option<OwnerPod>,
}

/// The pod holding a claim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct OwnerPod {
    #[serde(deserialize_with = "or_default")]
    pub name: String,
}

#[cfg(feature = "kube")]
crate::static_resource!(
    IpamClaim,
    "IPAMClaim",
    crate::nad::NAD_GROUP,
    IPAMCLAIM_VERSION,
    "ipamclaims",
    NamespaceResourceScope
);
