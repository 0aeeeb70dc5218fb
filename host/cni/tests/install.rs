//! The node installer `deploy/cni/install.sh` (what the danm-cni DaemonSet runs), run against temporary "host"
//! directories and a lab API server with TLS and a bearer token standing in for the ServiceAccount: the installed
//! binaries, plugins, precompiled cache, kubeconfig and CNI config list must give a `danm` that works as installed;
//! and (root) an upgrade in place under a running `danm`, after which the new `danm` deletes the old one's pod.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::installer::{DANM, FAKEIPAM, Node, danmctl, node_lab};
use common::lab::plugin_dir;
use common::links_in;
use danm_lab::{LabOptions, LabServer};
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installer_leaves_a_working_danm_with_precompiled_plugins_a_token_kubeconfig_and_a_config_list() {
    let (Some(plugins), Some(danmctl)) = (plugin_dir(), danmctl()) else {
        danm_testkit::fixtures::skip(
            "needs the built plugins (make guests) and danmctl (cargo build --workspace)",
        );
        return;
    };
    let lab = LabServer::start(LabOptions {
        tls: true,
        token: Some("node-token".into()),
        ..LabOptions::default()
    })
    .await
    .expect("lab server");
    let node = Node::with_image(&danmctl, lab.ca_pem().unwrap());

    let out = node.install(lab.url(), &plugins);
    assert!(
        out.status.success(),
        "install.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The config list: CNI 1.0.0 for runtimes with an older libcni, and 1.1.0 (STATUS, GC) for those that have it.
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.path("host/etc/cni/net.d/00-danm.conflist")).unwrap())
            .unwrap();
    assert_eq!(list["cniVersion"], "1.0.0", "{list}");
    assert_eq!(
        list["cniVersions"],
        serde_json::json!(["1.0.0", "1.1.0"]),
        "{list}"
    );

    // Binaries, plugins and one precompiled artefact per plugin.
    for b in ["danm", "fakeipam"] {
        assert_eq!(mode(&node.path(&format!("host/opt/cni/bin/{b}"))), 0o755, "{b}");
    }
    let shipped: Vec<String> = std::fs::read_dir(&plugins)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    for p in &shipped {
        assert!(
            node.path("host/etc/danm/plugins").join(p).exists(),
            "{p} installed"
        );
    }
    let artefacts = std::fs::read_dir(node.path("host/etc/danm/cache"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cwasm"))
        .count();
    assert_eq!(artefacts, shipped.len(), "every plugin precompiled");
    assert_eq!(
        mode(&node.path("host/etc/danm/cache")),
        0o700,
        "the cache is root-only"
    );
    assert_eq!(mode(&node.path("host/etc/danm/kubeconfig")), 0o600);
    assert_eq!(mode(&node.path("host/etc/danm/token")), 0o600);

    // The installed danm reaches the API server (TLS with the ServiceAccount CA, bearer token from the token file)
    // and loads the plugins: STATUS succeeds.
    let out = node.status();
    assert!(
        out.status.success(),
        "STATUS: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The token file is read on every call: a wrong token fails STATUS (50), the refreshed one works again.
    std::fs::write(node.path("host/etc/danm/token"), "stale").unwrap();
    let out = node.status();
    let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(err["code"], 50, "a rejected token: {err}");
    let out = node.install(lab.url(), &plugins);
    assert!(out.status.success(), "install.sh again refreshes the token");
    assert!(node.status().status.success(), "STATUS with the refreshed token");

    // A plugin an earlier install shipped and the image no longer ships is removed on the next install; a plugin
    // dropped into the directory by hand (a backend added without a new image) stays.
    let Some(host_device) = danm_testkit::fixtures::extra_plugin_or_skip("host-device") else {
        return;
    };
    let image = |name: &str, shipped_now: &[&String], extra: Option<(&Path, &str)>| {
        let dir = node.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for p in shipped_now {
            std::fs::copy(plugins.join(p), dir.join(p)).unwrap();
        }
        if let Some((file, as_name)) = extra {
            std::fs::copy(file, dir.join(as_name)).unwrap();
        }
        dir
    };
    let installed = |p: &str| node.path("host/etc/danm/plugins").join(p);
    let all: Vec<&String> = shipped.iter().collect();
    let v2 = image("image-v2", &all, Some((&host_device, "retired.wasm")));
    assert!(node.install(lab.url(), &v2).status.success());
    assert!(installed("retired.wasm").exists());
    // By hand: bridge's code under a name no image ships (v3 stops shipping bridge.wasm, so it serves the type).
    std::fs::copy(plugins.join("bridge.wasm"), installed("dropped-in.wasm")).unwrap();
    let without_bridge: Vec<&String> = shipped.iter().filter(|p| *p != "bridge.wasm").collect();
    let v3 = image("image-v3", &without_bridge, None);
    let out = node.install(lab.url(), &v3);
    assert!(out.status.success(), "install v3: {}", out_text(&out));
    for gone in ["retired.wasm", "bridge.wasm"] {
        assert!(
            !installed(gone).exists(),
            "{gone} is no longer shipped: {}",
            out_text(&out)
        );
    }
    assert!(
        installed("dropped-in.wasm").exists(),
        "a plugin dropped in by hand stays"
    );
    assert!(node.status().status.success());
}

fn ino(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

fn out_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The names in a directory that end with `suffix`.
fn names_ending(dir: &Path, suffix: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

/// Every file left under `dir` whose name says it is an installer's temporary file.
fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(tmp_files(&path));
        } else if entry.file_name().to_string_lossy().contains(".tmp") {
            found.push(path);
        }
    }
    found
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Upgrade in place (root): a pod is added through the installed `danm`; while a call of that `danm` is still
/// running, the installer runs again from an image whose binaries are other files and whose macvlan plugin has other
/// content. The running call finishes with the old binary, the new files are in place (new inodes, no temporary
/// files), the changed plugin is precompiled again, and the new `danm` deletes the old version's pod cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_in_place_replaces_binaries_and_plugins_under_a_running_danm_and_the_new_danm_deletes_the_old_pod()
 {
    let (Some(plugins), Some(danmctl)) = (plugin_dir(), danmctl()) else {
        danm_testkit::fixtures::skip(
            "needs the built plugins (make guests) and danmctl (cargo build --workspace)",
        );
        return;
    };
    if !common::root_and(&[]) {
        return;
    }
    let lab = node_lab().await;
    let server = lab.handle.url().to_owned();

    // v1: the built binaries and plugins.
    let node = Node::with_image(&danmctl, lab.handle.ca_pem().unwrap());
    let out = node.install(&server, &plugins);
    assert!(out.status.success(), "install.sh v1: {}", out_text(&out));

    // A pod added by v1: a macvlan interface over a host veth.
    let tag = format!("{}", std::process::id() % 10000);
    let (parent, peer) = (format!("up{tag}"), format!("uq{tag}"));
    common::cmd_ok(&[
        "ip", "link", "add", &parent, "type", "veth", "peer", "name", &peer,
    ]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            common::cmd(&["ip", "link", "del", &self.0]);
        }
    }
    let _parent = Gone(parent.clone());
    common::cmd_ok(&["ip", "link", "set", &parent, "up"]);
    let net = lab
        .network(
            danm_api::NetworkKind::DanmNet,
            "default",
            "upg",
            serde_json::json!({"NetworkID":"upg","NetworkType":"macvlan",
                "Options":{"host_device": parent, "cidr":"10.137.0.0/24"}}),
        )
        .await;
    let free = lab.holdings(&net).await;
    lab.pod(
        "default",
        "old",
        Some(serde_json::json!([{"network":"upg","ip":"dynamic"}])),
        &[],
    )
    .await;
    let ns = common::Netns::new(&format!("upg{tag}"));
    let out = node.pod_call("ADD", "old", "cid-old", &ns.path);
    assert!(out.status.success(), "ADD by v1: {}", out_text(&out));
    assert_eq!(links_in(&ns.name), ["eth0"]);
    let eth0 = common::cmd_ok(&["ip", "-n", &ns.name, "-d", "addr", "show", "dev", "eth0"]);
    assert!(
        eth0.contains("macvlan") && eth0.contains("10.137.0.1/24"),
        "{eth0}"
    );
    assert_eq!(lab.eps("default").await.len(), 1, "the pod's DanmEp");
    assert_ne!(lab.holdings(&net).await, free, "the pod's address is allocated");

    // v2: the binaries are other files (copies), and macvlan.wasm has other content (a custom section appended:
    // still the same valid component, another sha256).
    std::fs::create_dir_all(node.path("image2/bin")).unwrap();
    for (name, bin) in [
        ("danm", Path::new(DANM)),
        ("fakeipam", Path::new(FAKEIPAM)),
        ("danmctl", &danmctl),
    ] {
        std::fs::copy(bin, node.path("image2/bin").join(name)).unwrap();
    }
    let plugins2 = node.path("image2/plugins");
    std::fs::create_dir_all(&plugins2).unwrap();
    for p in names_ending(&plugins, ".wasm") {
        std::fs::copy(plugins.join(&p), plugins2.join(&p)).unwrap();
    }
    let (name, payload) = (b"danm-upgrade-test", b"v2");
    let mut section = vec![0u8, (1 + name.len() + payload.len()) as u8, name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(plugins2.join("macvlan.wasm"))
        .unwrap();
    std::io::Write::write_all(&mut f, &section).unwrap();
    drop(f);
    let new_key = sha256(&plugins2.join("macvlan.wasm"));
    assert_ne!(new_key, sha256(&node.path("host/etc/danm/plugins/macvlan.wasm")));

    let installed = |rel: &str| node.path(&format!("host/{rel}"));
    let files = [
        "opt/cni/bin/danm",
        "opt/cni/bin/fakeipam",
        "etc/danm/plugins/macvlan.wasm",
    ];
    let before: Vec<u64> = files.iter().map(|f| ino(&installed(f))).collect();
    let cache = installed("etc/danm/cache");
    let artefacts_before = names_ending(&cache, ".cwasm");
    assert!(
        !artefacts_before.iter().any(|a| a.starts_with(&new_key)),
        "no artefact of the new plugin yet"
    );

    // A v1 danm call in flight during the upgrade: STATUS started, blocked reading its config.
    let old_danm = installed("opt/cni/bin/danm");
    let old_bytes = std::fs::read(&old_danm).unwrap();
    let mut held = std::fs::File::open(&old_danm).unwrap();
    let mut running = Command::new(&old_danm)
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the v1 danm");
    let exe = format!("/proc/{}/exe", running.id());

    let out = node.install_from(&server, &node.path("image2/bin"), &plugins2);
    assert!(
        out.status.success(),
        "install.sh v2 while a v1 danm runs (no 'text file busy'): {}",
        out_text(&out)
    );

    // The new files are in place by rename: each has a new inode, and no temporary file is left.
    for (f, old) in files.iter().zip(&before) {
        assert_ne!(ino(&installed(f)), *old, "{f} replaced by another file");
    }
    assert_eq!(
        std::fs::read(installed("etc/danm/plugins/macvlan.wasm")).unwrap(),
        std::fs::read(plugins2.join("macvlan.wasm")).unwrap(),
        "the new macvlan.wasm is installed"
    );
    for dir in ["opt/cni/bin", "etc/cni/net.d", "etc/danm"] {
        assert_eq!(tmp_files(&installed(dir)), Vec::<PathBuf>::new(), "in {dir}");
    }
    // The running v1 danm runs the old, now unlinked inode; an open handle still reads the old binary whole.
    let target = std::fs::read_link(&exe).unwrap();
    assert!(
        target.to_string_lossy().ends_with(" (deleted)"),
        "the running danm's executable is the replaced file: {}",
        target.display()
    );
    let mut still = Vec::new();
    std::io::Read::read_to_end(&mut held, &mut still).unwrap();
    assert!(still == old_bytes, "the old inode survives for its users");
    // The in-flight call finishes with the old binary (against the upgraded node's files).
    {
        let mut stdin = running.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, node.conf("1.1.0").as_bytes()).unwrap();
    }
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the in-flight v1 STATUS: {}",
        out_text(&out)
    );

    // The plugin cache: the changed plugin was precompiled again at install time (an artefact for its new content),
    // the unchanged ones were not.
    let artefacts_after = names_ending(&cache, ".cwasm");
    let added: Vec<&String> = artefacts_after.difference(&artefacts_before).collect();
    assert_eq!(added.len(), 1, "one new artefact: {added:?}");
    assert!(added[0].starts_with(&new_key), "{added:?} is macvlan.wasm's");
    let check = Command::new(node.path("image2/bin/danmctl"))
        .args(["plugins", "check", "--plugin-dir"])
        .arg(installed("etc/danm/plugins"))
        .arg("--cache-dir")
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "danmctl plugins check: {}",
        out_text(&check)
    );
    assert_eq!(
        names_ending(&cache, ".cwasm"),
        artefacts_after,
        "nothing left to compile after the install"
    );

    // v2 deletes v1's pod: no link, DanmEp or address left; STATUS works.
    let out = node.pod_call("DEL", "old", "cid-old", &ns.path);
    assert!(out.status.success(), "DEL by v2: {}", out_text(&out));
    assert_eq!(links_in(&ns.name), Vec::<String>::new(), "links left");
    assert!(lab.eps("default").await.is_empty(), "DanmEps left");
    assert_eq!(lab.holdings(&net).await, free, "addresses left");
    let out = node.status();
    assert!(out.status.success(), "STATUS by v2: {}", out_text(&out));
    // A second DEL is harmless.
    let out = node.pod_call("DEL", "old", "cid-old", &ns.path);
    assert!(out.status.success(), "second DEL: {}", out_text(&out));
}
