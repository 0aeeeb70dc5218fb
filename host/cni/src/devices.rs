//! Device pools (behaviour §4.8): the devices kubelet allocated to the pod, per resource name, from kubelet's
//! PodResources gRPC API when its socket exists, else from the kubelet checkpoint file. Each network on a pool takes
//! the last remaining device, so successive networks on one pool get distinct devices in reverse order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Error;

/// The default checkpoint location.
pub const CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// The pod's devices per resource name, consumed as networks take them.
#[derive(Clone, Debug, Default)]
pub struct DevicePools {
    pools: BTreeMap<String, Vec<String>>,
}

impl DevicePools {
    /// The pod's devices: from kubelet's PodResources `List` when `<kubelet_root>/pod-resources/kubelet.sock`
    /// exists (an error there fails, naming the socket), else from `<kubelet_root>/device-plugins/
    /// kubelet_internal_checkpoint` by pod UID.
    pub async fn for_pod(
        kubelet_root: &Path,
        pod_uid: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Self, Error> {
        let socket = crate::podresources::socket_path(kubelet_root);
        if socket.exists() {
            let response = crate::podresources::list(&socket).await?;
            return Ok(DevicePools {
                pools: crate::podresources::pod_devices(&response, namespace, name),
            });
        }
        Self::from_checkpoint(&checkpoint_path(kubelet_root), pod_uid)
    }

    /// Reads the pod's entries of a kubelet checkpoint (both the old list and the newer per-NUMA-node map shape of
    /// `DeviceIDs`).
    pub fn from_checkpoint(path: &Path, pod_uid: &str) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|e| {
            Error::Sriov(format!(
                "failed to retrieve resources of DevicePool: {}: {e}",
                path.display()
            ))
        })?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Sriov(format!("kubelet checkpoint {} is not JSON: {e}", path.display())))?;
        let mut pools: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let entries = v
            .pointer("/Data/PodDeviceEntries")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in entries {
            if e.get("PodUID").and_then(Value::as_str) != Some(pod_uid) {
                continue;
            }
            let resource = e
                .get("ResourceName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let ids = pools.entry(resource).or_default();
            match e.get("DeviceIDs") {
                Some(Value::Array(list)) => {
                    ids.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                Some(Value::Object(numa)) => {
                    for list in numa.values() {
                        ids.extend(
                            list.as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_owned),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(DevicePools { pools })
    }

    /// Pops the last device of `pool`.
    pub fn take(&mut self, pool: &str) -> Result<String, Error> {
        match self.pools.get_mut(pool) {
            None => Err(Error::Sriov(format!(
                "failed to retrieve resources of DevicePool {pool}: there were no Devices allocated for the Pod"
            ))),
            Some(ids) => ids
                .pop()
                .ok_or_else(|| Error::Sriov(format!("devicePool {pool} is empty"))),
        }
    }
}

/// Where the checkpoint lives under a kubelet root (tests use a temporary root).
pub fn checkpoint_path(kubelet_root: &Path) -> PathBuf {
    kubelet_root.join("device-plugins/kubelet_internal_checkpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_networks_on_one_pool_take_the_last_then_the_second_to_last_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(
            &path,
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u1","ResourceName":"nokia.k8s.io/sriov_ens1f0","DeviceIDs":{"0":["0000:01:00.1","0000:01:00.2"]}},
               {"PodUID":"u2","ResourceName":"nokia.k8s.io/sriov_ens1f0","DeviceIDs":["0000:01:00.3"]}]}}"#,
        )
        .unwrap();
        let mut pools = DevicePools::from_checkpoint(&path, "u1").unwrap();
        assert_eq!(pools.take("nokia.k8s.io/sriov_ens1f0").unwrap(), "0000:01:00.2");
        assert_eq!(pools.take("nokia.k8s.io/sriov_ens1f0").unwrap(), "0000:01:00.1");
        assert!(
            pools
                .take("nokia.k8s.io/sriov_ens1f0")
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        assert!(
            pools
                .take("other")
                .unwrap_err()
                .to_string()
                .contains("failed to retrieve resources of DevicePool")
        );
    }
}
