//! The pod simulator with Debian's real CNI plugins: a pod becomes a network namespace wired by bridge + host-local
//! (+ tuning chained on prevResult), its IP lands in the Pod status, and deletion runs DEL and removes everything.

mod common;

use danm_lab::sim::{PodSim, PodSpec, SimConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use std::path::Path;
use std::process::Command;

const PLUGINS: &str = "/usr/lib/cni";

fn skip_reason() -> Option<String> {
    if !danm_testkit::fixtures::is_root() {
        return Some("not root".into());
    }
    for p in ["bridge", "host-local", "tuning"] {
        if !Path::new(PLUGINS).join(p).exists() {
            return Some(format!(
                "{PLUGINS}/{p} missing (apt-get install containernetworking-plugins)"
            ));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) missing".into());
    }
    None
}

fn in_netns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_simulated_pod_gets_a_netns_an_address_from_the_cni_chain_and_is_cleaned_up_on_delete() {
    if let Some(why) = skip_reason() {
        danm_testkit::fixtures::skip(&why);
        return;
    }
    let lab = common::lab().await;
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("net.d");
    let ipam_dir = dir.path().join("ipam");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let bridge = format!("labbr{}", std::process::id() % 100_000);
    let conf = json!({
        "cniVersion": "1.0.0", "name": "labnet",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.244.77.0/24", "dataDir": ipam_dir}},
            {"type": "tuning", "mtu": 1400}
        ]
    });
    std::fs::write(conf_dir.join("10-labnet.conflist"), conf.to_string()).unwrap();
    let cfg = SimConfig {
        kubeconfig: lab.kubeconfig_path().into(),
        cni_conf_dir: conf_dir,
        cni_path: PLUGINS.into(),
        state_dir: dir.path().join("pods"),
        netns_dir: "/var/run/netns".into(),
    };
    let sim = PodSim::new(cfg).await.unwrap();
    let ns_name = format!("simtest{}", std::process::id());
    let spec = PodSpec {
        namespace: "default".into(),
        name: ns_name.clone(),
        labels: [("app".to_string(), "web".to_string())].into(),
        annotations: [(
            "danm.k8s.io/interfaces".to_string(),
            r#"[{"network":"labnet"}]"#.to_string(),
        )]
        .into(),
        node_name: "lab-node".into(),
    };
    let pod = sim.add(&spec).await.unwrap();
    let _cleanup = Cleanup {
        bridge: bridge.clone(),
        netns: pod.netns_name.clone(),
    };
    {
        assert!(pod.netns.exists(), "netns {} exists", pod.netns.display());
        assert_eq!(pod.ips.len(), 1);
        let ip = &pod.ips[0];
        assert!(ip.starts_with("10.244.77."), "{ip}");
        let addr = in_netns(&pod.netns_name, &["ip", "-o", "addr", "show", "eth0"]);
        assert!(addr.contains(&format!("{ip}/24")), "{addr}");
        let link = in_netns(&pod.netns_name, &["ip", "-o", "link", "show", "eth0"]);
        assert!(
            link.contains("mtu 1400"),
            "the chained tuning plugin ran on prevResult: {link}"
        );
        assert!(
            ipam_dir.join("labnet").join(ip).exists(),
            "host-local recorded the lease"
        );

        let pods: Api<Pod> = Api::namespaced(lab.client().await.unwrap(), "default");
        let p = pods.get(&spec.name).await.unwrap();
        let st = p.status.unwrap();
        assert_eq!(st.pod_ip.as_deref(), Some(ip.as_str()));
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let ready = |s: &k8s_openapi::api::core::v1::PodStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(ready(&st), "True");
        assert_eq!(
            p.metadata.annotations.unwrap()["danm.k8s.io/interfaces"],
            r#"[{"network":"labnet"}]"#
        );

        sim.set_ready("default", &spec.name, false).await.unwrap();
        assert_eq!(
            ready(&pods.get(&spec.name).await.unwrap().status.unwrap()),
            "False"
        );

        sim.del("default", &spec.name).await.unwrap();
        assert!(!pod.netns.exists(), "netns removed");
        assert!(
            !ipam_dir.join("labnet").join(ip).exists(),
            "DEL released the lease"
        );
        assert!(matches!(pods.get(&spec.name).await.unwrap_err(), kube::Error::Api(s) if s.code == 404));
    }
}

/// Removes what a failed run may leave; the bridge plugin leaves its bridge behind even on a good DEL.
struct Cleanup {
    bridge: String,
    netns: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        if Path::new("/var/run/netns").join(&self.netns).exists() {
            let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
        }
    }
}
