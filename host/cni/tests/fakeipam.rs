//! fakeipam as a binary: env + stdin, and as the IPAM of Debian's reference macvlan plugin in a real netns.

mod common;

use std::path::Path;

use common::{Netns, cmd_ok, run_plugin};
use serde_json::Value;

const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");

#[test]
fn fakeipam_binary_prints_the_result_on_stdout_and_exits_zero() {
    let conf = r#"{"cniVersion":"0.4.0","name":"n","ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.9.0.5/24","version":4}]}}"#;
    let out = run_plugin(Path::new(FAKEIPAM), "ADD", &[], conf);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ips"][0]["address"], "10.9.0.5/24");
    assert_eq!(v["ips"][0]["version"], "4");
}

#[test]
fn fakeipam_binary_reports_errors_as_cni_json_with_a_nonzero_exit() {
    let out = run_plugin(
        Path::new(FAKEIPAM),
        "ADD",
        &[],
        r#"{"cniVersion":"1.0.0","ipam":{"ips":[]}}"#,
    );
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["msg"], "No IP was passed to fake IPAM");
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["code"].as_u64().unwrap() > 0);
    let out = run_plugin(
        Path::new(FAKEIPAM),
        "DEL",
        &[],
        r#"{"cniVersion":"1.0.0","ipam":{"ips":[]}}"#,
    );
    assert!(out.status.success() && out.stdout.is_empty());
}

#[test]
fn netns_debian_macvlan_uses_fakeipam_for_its_addresses_in_every_version_it_knows() {
    if !common::root_and(&["/usr/lib/cni/macvlan"]) {
        return;
    }
    let tag = format!("fi{}", std::process::id() % 100000);
    let ns = Netns::new(&format!("{tag}ns"));
    let parent = format!("{tag}p");
    cmd_ok(&[
        "ip",
        "link",
        "add",
        &parent,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{tag}q"),
    ]);
    cmd_ok(&["ip", "link", "set", &parent, "up"]);
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(FAKEIPAM, bin_dir.path().join("fakeipam")).unwrap();
    let cni_path = format!("{}:/usr/lib/cni", bin_dir.path().display());
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0"].iter().enumerate() {
        let j = i + 1;
        let conf = format!(
            r#"{{"cniVersion":"{v}","name":"fi","type":"macvlan","master":"{parent}","mode":"bridge","ipam":{{"type":"fakeipam","ips":[{{"ipcidr":"10.77.{i}.5/24","version":4}},{{"ipcidr":"fd77:{j}::5/64","version":6}}]}}}}"#
        );
        let env = [
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", ns.path.as_str()),
            ("CNI_IFNAME", "net1"),
            ("CNI_PATH", cni_path.as_str()),
        ];
        let out = run_plugin(Path::new("/usr/lib/cni/macvlan"), "ADD", &env, &conf);
        assert!(out.status.success(), "macvlan ADD {v}: {out:?}");
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["ips"][0]["address"], format!("10.77.{i}.5/24"));
        let addrs = cmd_ok(&["ip", "-n", &ns.name, "addr", "show", "dev", "net1"]);
        assert!(addrs.contains(&format!("10.77.{i}.5/24")), "{addrs}");
        assert!(addrs.contains(&format!("fd77:{j}::5/64")), "{addrs}");
        let out = run_plugin(Path::new("/usr/lib/cni/macvlan"), "DEL", &env, &conf);
        assert!(out.status.success(), "macvlan DEL {v}: {out:?}");
        let links = cmd_ok(&["ip", "-n", &ns.name, "link", "show"]);
        assert!(!links.contains("net1"), "{links}");
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &parent])
        .status();
}
