//! Kubelet's PodResources gRPC API v1 (behaviour §4.8): `List` over kubelet's unix socket, reduced to the
//! device ids one pod holds per resource name. The messages are hand-written prost structs carrying the field
//! numbers of `k8s.io/kubelet/pkg/apis/podresources/v1/api.proto` (fields danm does not read are skipped by
//! prost), so the build needs no protoc.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::codegen::http;

use crate::error::Error;

/// The socket under kubelet's root directory.
pub const SOCKET: &str = "pod-resources/kubelet.sock";
/// The whole call (connect and List) is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `List` answer accepted (kubelet's own clients use the same limit).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The gRPC method path of `List` (proto package `v1`, service `PodResourcesLister`).
pub const LIST_PATH: &str = "/v1.PodResourcesLister/List";

/// `ListPodResourcesRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesRequest {}

/// `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

/// `PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// `ContainerResources { string name = 1; repeated ContainerDevices devices = 2; ... }` (cpu ids, memory and
/// dynamic resources are not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

/// `ContainerDevices { string resource_name = 1; repeated string device_ids = 2; ... }` (topology is not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerDevices {
    #[prost(string, tag = "1")]
    pub resource_name: String,
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

/// Where the socket lives under a kubelet root (tests use a temporary root).
pub fn socket_path(kubelet_root: &Path) -> PathBuf {
    kubelet_root.join(SOCKET)
}

/// The device ids of every container of pod `namespace/name`, grouped by resource name, in the order kubelet lists
/// them.
pub fn pod_devices(
    response: &ListPodResourcesResponse,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut pools: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in response
        .pod_resources
        .iter()
        .filter(|p| p.name == name && p.namespace == namespace)
    {
        for device in pod.containers.iter().flat_map(|c| &c.devices) {
            pools
                .entry(device.resource_name.clone())
                .or_default()
                .extend(device.device_ids.iter().cloned());
        }
    }
    pools
}

/// Calls `List` on the kubelet socket `socket`, within [`TIMEOUT`] and accepting answers up to [`MAX_MESSAGE`].
pub async fn list(socket: &Path) -> Result<ListPodResourcesResponse, Error> {
    let fail = |what: String| {
        Error::Sriov(format!(
            "failed to retrieve resources of DevicePool: kubelet pod-resources List on unix://{} {what}",
            socket.display()
        ))
    };
    match tokio::time::timeout(TIMEOUT, call_list(socket)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(what)) => Err(fail(what)),
        Err(_) => Err(fail(format!("timed out after {TIMEOUT:?}"))),
    }
}

async fn call_list(socket: &Path) -> Result<ListPodResourcesResponse, String> {
    let path = socket.to_owned();
    let connector = tower::service_fn(move |_: http::Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    // The authority is not used for a unix socket; it only has to be a valid URI.
    let channel = tonic::transport::Endpoint::from_static("http://kubelet.sock")
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("could not connect: {}", source_chain(&e)))?;
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
    grpc.ready()
        .await
        .map_err(|e| format!("is not ready: {}", source_chain(&e)))?;
    let codec = tonic_prost::ProstCodec::<ListPodResourcesRequest, ListPodResourcesResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(ListPodResourcesRequest {}),
            http::uri::PathAndQuery::from_static(LIST_PATH),
            codec,
        )
        .await
        .map_err(|status| format!("failed: {:?}: {}", status.code(), status.message()))?;
    Ok(response.into_inner())
}

/// An error with its causes (transport errors hide the useful part in their sources).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
        ContainerDevices {
            resource_name: resource.to_owned(),
            device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_pods_devices_of_all_its_containers_are_grouped_by_resource_name() {
        let pod = |ns: &str, name: &str, containers: Vec<ContainerResources>| PodResources {
            name: name.into(),
            namespace: ns.into(),
            containers,
        };
        let response = ListPodResourcesResponse {
            pod_resources: vec![
                pod(
                    "default",
                    "p",
                    vec![
                        ContainerResources {
                            name: "a".into(),
                            devices: vec![devices("r/x", &["01.1"]), devices("r/y", &["02.1"])],
                        },
                        ContainerResources {
                            name: "b".into(),
                            devices: vec![devices("r/x", &["01.2", "01.3"])],
                        },
                    ],
                ),
                pod(
                    "other",
                    "p",
                    vec![ContainerResources {
                        name: "a".into(),
                        devices: vec![devices("r/x", &["09.9"])],
                    }],
                ),
            ],
        };
        let got = pod_devices(&response, "default", "p");
        assert_eq!(got["r/x"], ["01.1", "01.2", "01.3"]);
        assert_eq!(got["r/y"], ["02.1"]);
        assert_eq!(got.len(), 2);
        assert!(pod_devices(&response, "default", "q").is_empty());
    }

    #[test]
    fn the_messages_use_the_field_numbers_of_the_kubelet_proto() {
        // ContainerDevices{resource_name:"r", device_ids:["d"]}: field 1 (0x0a) "r", field 2 (0x12) "d", and a
        // topology (field 3, 0x1a) that danm skips.
        let bytes = [0x0a, 1, b'r', 0x12, 1, b'd', 0x1a, 0];
        assert_eq!(
            ContainerDevices::decode(&bytes[..]).unwrap(),
            devices("r", &["d"])
        );
        let pod = PodResources {
            name: "n".into(),
            namespace: "s".into(),
            containers: vec![],
        };
        assert_eq!(pod.encode_to_vec(), [0x0a, 1, b'n', 0x12, 1, b's']);
        let list = ListPodResourcesResponse {
            pod_resources: vec![pod],
        };
        assert_eq!(list.encode_to_vec()[0], 0x0a, "pod_resources is field 1");
    }
}
