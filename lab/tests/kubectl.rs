//! The lab server driven by the real `kubectl` binary, as a user would on a real cluster.

mod common;

use std::path::PathBuf;
use std::process::Command;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.kubeconfig.parent().unwrap())
            .output()
            .expect("kubectl runs");
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.success(), so, se)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, so, se) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\nstdout: {so}\nstderr: {se}");
        so
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("kubectl printed JSON")
    }
}

const DANMNET: &str = r#"apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: management
  namespace: demo
spec:
  NetworkID: management
  NetworkType: macvlan
  Options:
    host_device: lab0
    cidr: 10.20.0.0/24
    allocation_pool:
      start: 10.20.0.10
      end: 10.20.0.200
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_applies_lists_labels_annotates_and_deletes_danmnets() {
    let Some(bin) = danm_testkit::fixtures::kubectl_or_skip() else {
        return;
    };
    let lab = common::lab().await;
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        bin,
        kubeconfig: lab.kubeconfig_path().to_path_buf(),
    };
    let crds = danm_testkit::fixtures::workspace_dir().join("deploy/crds");
    let manifest = dir.path().join("danmnet.yaml");
    std::fs::write(&manifest, DANMNET).unwrap();

    tokio::task::spawn_blocking(move || {
        assert!(
            k.ok(&["create", "namespace", "demo"])
                .contains("namespace/demo created")
        );
        let applied = k.ok(&["apply", "-k", crds.to_str().unwrap()]);
        assert!(
            applied.contains("customresourcedefinition.apiextensions.k8s.io/danmnets.danm.k8s.io created"),
            "{applied}"
        );
        let crd_list = k.ok(&["get", "crds"]);
        assert!(crd_list.contains("danmnets.danm.k8s.io"), "{crd_list}");

        let out = k.ok(&["apply", "-f", manifest.to_str().unwrap()]);
        assert_eq!(out.trim(), "danmnet.danm.k8s.io/management created");
        // Re-applying an unchanged manifest is a no-op, a changed one a patch.
        assert_eq!(
            k.ok(&["apply", "-f", manifest.to_str().unwrap()]).trim(),
            "danmnet.danm.k8s.io/management unchanged"
        );
        std::fs::write(&manifest, DANMNET.replace("10.20.0.200", "10.20.0.100")).unwrap();
        assert_eq!(
            k.ok(&["apply", "-f", manifest.to_str().unwrap()]).trim(),
            "danmnet.danm.k8s.io/management configured"
        );

        let list = k.json(&["get", "danmnets", "-n", "demo", "-o", "json"]);
        assert_eq!(list["kind"], "List");
        let item = &list["items"][0];
        assert_eq!(item["kind"], "DanmNet");
        assert_eq!(item["metadata"]["name"], "management");
        assert_eq!(item["spec"]["Options"]["allocation_pool"]["end"], "10.20.0.100");
        assert!(
            item["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string()
        );

        // Server-side printing uses the CRD's printer columns; short names resolve.
        let table = k.ok(&["get", "dn", "-n", "demo"]);
        let header = table.lines().next().unwrap();
        assert!(
            header.starts_with("NAME") && header.contains("NETWORKTYPE") && header.contains("CIDR"),
            "{table}"
        );
        assert!(
            table.contains("management") && table.contains("10.20.0.0/24"),
            "{table}"
        );

        assert_eq!(
            k.ok(&["label", "danmnet", "management", "-n", "demo", "team=blue"])
                .trim(),
            "danmnet.danm.k8s.io/management labeled"
        );
        assert_eq!(
            k.ok(&[
                "annotate",
                "dn",
                "management",
                "-n",
                "demo",
                "danm.k8s.io/note=lab"
            ])
            .trim(),
            "danmnet.danm.k8s.io/management annotated"
        );
        let obj = k.json(&["get", "danmnet", "management", "-n", "demo", "-o", "json"]);
        assert_eq!(obj["metadata"]["labels"]["team"], "blue");
        assert_eq!(obj["metadata"]["annotations"]["danm.k8s.io/note"], "lab");
        let selected = k.json(&[
            "get",
            "danmnets",
            "-n",
            "demo",
            "-l",
            "team in (blue,red)",
            "-o",
            "json",
        ]);
        assert_eq!(selected["items"].as_array().unwrap().len(), 1);
        let none = k.json(&["get", "danmnets", "-n", "demo", "-l", "team!=blue", "-o", "json"]);
        assert!(none["items"].as_array().unwrap().is_empty());
        assert_eq!(
            k.ok(&["label", "dn", "management", "-n", "demo", "team-"]).trim(),
            "danmnet.danm.k8s.io/management unlabeled"
        );

        assert_eq!(
            k.ok(&["delete", "danmnet", "management", "-n", "demo"]).trim(),
            "danmnet.danm.k8s.io \"management\" deleted"
        );
        let (ok, _, err) = k.run(&["get", "danmnet", "management", "-n", "demo"]);
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "Error from server (NotFound): danmnets.danm.k8s.io \"management\" not found"
        );

        // Built-in kinds through kubectl too: configmaps (strategic merge patch on apply) and pods.
        let cm = k.ok(&["create", "configmap", "c", "-n", "demo", "--from-literal=a=1"]);
        assert_eq!(cm.trim(), "configmap/c created");
        let cm = k.json(&["get", "cm", "c", "-n", "demo", "-o", "json"]);
        assert_eq!(cm["data"]["a"], "1");
        assert!(
            k.ok(&["delete", "namespace", "demo"])
                .contains("namespace \"demo\" deleted")
        );
    })
    .await
    .unwrap();
    lab.shutdown().await;
}

/// The objects `kubectl kustomize deploy/` renders: (kind, namespace, name) and the document.
fn rendered(yaml: &str) -> Vec<((String, String, String), serde_json::Value)> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("kustomize printed YAML");
            let s = |p: &str| {
                v.pointer(p)
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            ((s("/kind"), s("/metadata/namespace"), s("/metadata/name")), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_applies_as_an_operator_would_dry_run_first_then_for_real() {
    let Some(bin) = danm_testkit::fixtures::kubectl_or_skip() else {
        return;
    };
    let lab = common::lab().await;
    let k = Kubectl {
        bin,
        kubeconfig: lab.kubeconfig_path().to_path_buf(),
    };
    let deploy = danm_testkit::fixtures::workspace_dir().join("deploy");
    tokio::task::spawn_blocking(move || {
        let deploy = deploy.to_str().unwrap();
        // Every CRD file is part of the kustomization.
        let crds = std::fs::read_to_string(format!("{deploy}/crds/kustomization.yaml")).unwrap();
        for f in std::fs::read_dir(format!("{deploy}/crds")).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            if name != "kustomization.yaml" {
                assert!(
                    crds.contains(&format!("- {name}")),
                    "deploy/crds/kustomization.yaml misses {name}"
                );
            }
        }
        let objects = rendered(&k.ok(&["kustomize", deploy]));
        let kinds: std::collections::BTreeSet<&str> =
            objects.iter().map(|((kind, _, _), _)| kind.as_str()).collect();
        for want in [
            "CustomResourceDefinition",
            "DaemonSet",
            "Deployment",
            "ClusterRole",
            "ClusterRoleBinding",
            "ServiceAccount",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "ConfigMap",
        ] {
            assert!(
                kinds.contains(want),
                "kubectl kustomize deploy/ renders no {want}: {kinds:?}"
            );
        }

        // A server-side dry run validates everything and stores nothing.
        let dry = k.ok(&["apply", "-k", deploy, "--dry-run=server"]);
        assert!(dry.contains("(server dry run)"), "{dry}");
        let (found, _, _) = k.run(&["get", "crd", "danmnets.danm.k8s.io"]);
        assert!(!found, "the dry run stored the DanmNet CRD");

        // For real: each object is stored as written.
        let out = k.ok(&["apply", "-k", deploy]);
        assert_eq!(out.lines().count(), objects.len(), "one line per object:\n{out}");
        for ((kind, ns, name), want) in &objects {
            let mut args = vec!["get", kind.as_str(), name.as_str(), "-o", "json"];
            if !ns.is_empty() {
                args.extend(["-n", ns.as_str()]);
            }
            let have = k.json(&args);
            for field in [
                "/rules",
                "/roleRef",
                "/subjects",
                "/spec/template/spec",
                "/spec/names",
                "/webhooks",
                "/data",
            ] {
                if let Some(w) = want.pointer(field) {
                    let h = have.pointer(field).unwrap_or(&serde_json::Value::Null);
                    // The server may add defaults; everything written is there with the value written.
                    assert!(
                        contains(h, w),
                        "{kind} {ns}/{name}: {field} stored as {h}, written as {w}"
                    );
                }
            }
        }
        // And a second apply changes nothing.
        let again = k.ok(&["apply", "-k", deploy]);
        assert!(again.lines().all(|l| l.ends_with("unchanged")), "{again}");
    })
    .await
    .unwrap();
}

/// `have` holds everything `want` says (objects: each key, recursively; lists: element by element).
fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v)))
        }
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (h, w) => h == w,
    }
}
