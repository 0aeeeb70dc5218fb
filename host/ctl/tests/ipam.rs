//! `danmctl ipam` end to end: the built binary on temporary network files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use danm_api::Network;
use danm_core::ipam::Bitmap;

const NET_YAML: &str = "\
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: ext
  namespace: default
spec:
  NetworkID: ext
  NetworkType: ipvlan
  Options:
    host_device: ens4
    cidr: 192.168.1.64/26
    net6: 2001:db8::/120
    routes:
      10.0.0.0/8: 192.168.1.65
";

/// A DanmNet as DANM's CNI wrote it: empty pools always serialised, allocation already done by the webhook.
const NET_JSON: &str = r#"{
  "apiVersion": "danm.k8s.io/v1", "kind": "ClusterNetwork",
  "metadata": {"name": "internal", "resourceVersion": "42"},
  "spec": {"NetworkID": "internal", "NetworkType": "ipvlan",
    "Options": {"host_device": "ens4", "cidr": "10.0.0.0/30", "alloc": "kA==",
      "allocation_pool": {"start": "10.0.0.1", "end": "10.0.0.2", "lastIp": ""},
      "allocation_pool_v6": {"start": "", "end": "", "lastIp": "", "cidr": ""},
      "rt_tables": 0, "vlan": 0}}
}"#;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn danmctl(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_danmctl"))
        .args(args)
        .output()
        .expect("danmctl runs");
    Run {
        ok: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_yaml(p: &Path) -> Network {
    serde_yaml::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

/// An initialised copy of NET_YAML in `dir`.
fn initialised(dir: &Path) -> PathBuf {
    let f = write(dir, "net.yaml", NET_YAML);
    let r = danmctl(&["ipam", "init", "-f", s(&f), "-o", s(&f)]);
    assert!(r.ok, "{}", r.stderr);
    f
}

#[test]
fn init_applies_the_webhook_defaults_and_reports_the_changed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "net.yaml", NET_YAML);
    let out = dir.path().join("out.yaml");
    let r = danmctl(&["ipam", "init", "-f", s(&f), "-o", s(&out)]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "set /spec/Options/allocation_pool\nset /spec/Options/alloc\nset /spec/Options/allocation_pool_v6\n\
         set /spec/Options/alloc6\n"
    );
    let n = read_yaml(&out);
    let o = &n.spec.options;
    assert_eq!(
        (o.allocation_pool.start.as_str(), o.allocation_pool.end.as_str()),
        ("192.168.1.65", "192.168.1.126")
    );
    assert_eq!(
        o.alloc, "wAAAAAAAAAE=",
        "network, broadcast and the .65 gateway are reserved"
    );
    assert_eq!(o.allocation_pool_v6.cidr, "2001:db8::/120");
    assert_eq!(n.spec.options.host_device, "ens4", "other fields are kept");
    assert_eq!(n.metadata.namespace.as_deref(), Some("default"));

    let again = danmctl(&["ipam", "init", "-f", s(&out), "-o", s(&out)]);
    assert_eq!(again.stdout, "nothing to change\n");
}

#[test]
fn reserve_prints_both_addresses_and_writes_the_updated_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = initialised(dir.path());
    let r = danmctl(&[
        "ipam",
        "reserve",
        "-f",
        s(&f),
        "--ip",
        "dynamic",
        "--ip6",
        "dynamic",
        "-o",
        s(&f),
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout, "ip: 192.168.1.66/26\nip6: 2001:db8::1/120\n");
    let n = read_yaml(&f);
    assert!(Bitmap::decode(&n.spec.options.alloc).unwrap().get(2));
    assert!(Bitmap::decode(&n.spec.options.alloc6).unwrap().get(1));
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]);
    assert_eq!(r.stdout, "ip: 192.168.1.67/26\n", "no flags means a dynamic IPv4");
}

#[test]
fn reserve_without_output_keeps_json_on_stdout_and_reports_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "net.json", NET_JSON);
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "--ip", "10.0.0.2/32"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stderr, "ip: 10.0.0.2/30\n");
    let n: Network = serde_json::from_str(&r.stdout).expect("stdout is the JSON object");
    assert_eq!(n.kind, "ClusterNetwork");
    assert_eq!(
        n.metadata.resource_version.as_deref(),
        Some("42"),
        "resourceVersion is kept for a conditional PUT"
    );
    assert_eq!(n.spec.options.alloc, "sA==");
    assert_eq!(
        fs::read_to_string(&f).unwrap(),
        NET_JSON,
        "the input is untouched without -o"
    );
}

#[test]
fn a_full_pool_fails_with_danms_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "net.json", NET_JSON);
    for expected in ["ip: 10.0.0.1/30\n", "ip: 10.0.0.2/30\n"] {
        let r = danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]);
        assert_eq!(r.stdout, expected, "{}", r.stderr);
    }
    let before = fs::read_to_string(&f).unwrap();
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("failed to allocate IP address for network:internal"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("all addresses are reserved!"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(fs::read_to_string(&f).unwrap(), before);
}

#[test]
fn static_errors_exit_non_zero_with_the_ipam_text() {
    let dir = tempfile::tempdir().unwrap();
    let f = initialised(dir.path());
    let cases = [
        (
            &["--ip", "192.168.1.65"][..],
            "requested IP address:192.168.1.65 is already in use",
        ),
        (
            &["--ip", "10.1.1.1"][..],
            "is outside the network's CIDR:192.168.1.64/26",
        ),
        (&["--ip", "192.168.1.300"][..], "is not a valid IP"),
        (
            &["--ip6", "2001:db8::1:1"][..],
            "is outside the network's CIDR:2001:db8::/120",
        ),
    ];
    for (args, msg) in cases {
        let mut full = vec!["ipam", "reserve", "-f", s(&f), "-o", s(&f)];
        full.extend_from_slice(args);
        let r = danmctl(&full);
        assert!(!r.ok, "{args:?} should fail");
        assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn reserving_on_an_l2_network_fails() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "l2.yaml",
        "kind: TenantNetwork\nmetadata: {name: l2}\nspec: {NetworkID: l2}\n",
    );
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "--ip", "dynamic"]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("IP address cannot be allocated for an L2 network!"),
        "{}",
        r.stderr
    );
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "--ip", "none"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stderr, "ip: none\n");
}

#[test]
fn free_reports_each_address_and_the_freed_one_is_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let f = initialised(dir.path());
    for _ in 0..3 {
        assert!(danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]).ok);
    }
    let r = danmctl(&[
        "ipam",
        "free",
        "-f",
        s(&f),
        "192.168.1.67/26",
        "192.168.1.67",
        "192.168.1.64",
        "192.168.1.65",
        "10.9.9.9",
        "-o",
        s(&f),
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "192.168.1.67/26: freed\n192.168.1.67: was not allocated\n\
         192.168.1.64: not freed: network, broadcast or gateway address\n\
         192.168.1.65: not freed: network, broadcast or gateway address\n\
         10.9.9.9: not tracked: outside the range the bitmap covers\n"
    );
    let r = danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]);
    assert_eq!(r.stdout, "ip: 192.168.1.67/26\n");
}

#[test]
fn free_of_something_that_is_not_an_address_fails_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let f = initialised(dir.path());
    let before = fs::read_to_string(&f).unwrap();
    let r = danmctl(&["ipam", "free", "-f", s(&f), "192.168.1.66", "bogus", "-o", s(&f)]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("cannot free \"bogus\": not an IP address"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), before);
}

#[test]
fn show_prints_pools_counts_and_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let f = initialised(dir.path());
    assert!(
        danmctl(&[
            "ipam",
            "reserve",
            "-f",
            s(&f),
            "--ip",
            "dynamic",
            "--ip6",
            "dynamic",
            "-o",
            s(&f)
        ])
        .ok
    );
    assert!(danmctl(&["ipam", "reserve", "-f", s(&f), "-o", s(&f)]).ok);
    assert!(
        danmctl(&[
            "ipam",
            "reserve",
            "-f",
            s(&f),
            "--ip",
            "192.168.1.100",
            "-o",
            s(&f)
        ])
        .ok
    );
    let r = danmctl(&["ipam", "show", "-f", s(&f)]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "DanmNet default/ext\n\
         IPv4 cidr 192.168.1.64/26\n\
         \x20 pool 192.168.1.65 - 192.168.1.126: 62 addresses, 4 used, 58 free\n\
         \x20 reserved: 192.168.1.64 (network), 192.168.1.127 (broadcast), 192.168.1.65 (gateway)\n\
         \x20 allocated (3): 192.168.1.66-192.168.1.67, 192.168.1.100\n\
         IPv6 net6 2001:db8::/120 pool cidr 2001:db8::/120\n\
         \x20 pool 2001:db8::1 - 2001:db8::fe: 254 addresses, 1 used, 253 free\n\
         \x20 reserved: 2001:db8:: (network), 2001:db8::ff (broadcast)\n\
         \x20 allocated (1): 2001:db8::1\n"
    );
}

#[test]
fn show_of_an_uninitialised_network_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "net.yaml", NET_YAML);
    let r = danmctl(&["ipam", "show", "-f", s(&f)]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("IPv4 cidr 192.168.1.64/26: no allocation bitmap (run `danmctl ipam init`)")
    );
    assert!(
        r.stdout
            .contains("IPv6 net6 2001:db8::/120: no allocation bitmap yet")
    );
}

#[test]
fn init_rejects_what_the_webhook_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "big.yaml",
        &NET_YAML.replace("192.168.1.64/26", "10.0.0.0/8"),
    );
    let r = danmctl(&["ipam", "init", "-f", s(&f)]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("Netmask of the IPv4 CIDR is bigger than the maximum allowed /9"),
        "{}",
        r.stderr
    );
}

#[test]
fn files_that_are_not_networks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "tc.yaml",
        "apiVersion: danm.k8s.io/v1\nkind: TenantConfig\nmetadata: {name: t}\n",
    );
    let r = danmctl(&["ipam", "show", "-f", s(&f)]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("holds kind \"TenantConfig\", not a DanmNet, TenantNetwork or ClusterNetwork"),
        "{}",
        r.stderr
    );
    let missing = dir.path().join("missing.yaml");
    let r = danmctl(&["ipam", "show", "-f", s(&missing)]);
    assert!(!r.ok);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
}
