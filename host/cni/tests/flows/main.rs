//! The ADD/DEL/CHECK/GC/STATUS flows on the recording netlink fake, against the in-process lab API server and the
//! real backend plugins, one module per verb or concern (one test binary). Each failure test checks that nothing is
//! left: no DanmEp, no allocated address, no link. This file holds the shared world and helpers.

mod add;
#[path = "../common/mod.rs"]
mod common;
mod del;
mod delegate;
mod ipam;
mod lifecycle;
mod sriov;

use std::path::PathBuf;
use std::sync::Arc;

use common::lab::{Call, Lab, Services, ctx, lab, plugins};
use danm_api::{NetworkKind, labels};
use danm_cni::error::Error;
use danm_cni::ipam::Retry;
use danm_cni::native::Sysfs;
use danm_cni::run::dispatch;
use danm_core::cni::{CniConfig, codes};
use danm_lab::Fault;
use danm_netlink::{
    Call as NlCall, FakeNetlink, IpvlanMode, LinkKind, MacvlanMode, Netlink, Netns, TABLE_MAIN,
};
use serde_json::{Value, json};

const NS: &str = "default";

struct World {
    lab: Lab,
    fake: Arc<FakeNetlink>,
    svc: Services,
    pod_ns: Netns,
    netns_path: String,
    _tmp: tempfile::TempDir,
}

async fn world() -> Option<World> {
    let Some(translator) = plugins() else {
        common::skip_without_plugins();
        return None;
    };
    let lab = lab().await;
    let fake = Arc::new(FakeNetlink::new());
    fake.add_device(&Netns::Host, "ens1", 1500);
    let netns_path = "/var/run/netns/fakepod".to_owned();
    let pod_ns = Netns::path(&netns_path);
    fake.add_netns(pod_ns.clone());
    let tmp = tempfile::tempdir().unwrap();
    let svc = Services {
        api: lab.api.clone(),
        netlink: fake.clone(),
        translator,
        sysfs: Sysfs {
            root: tmp.path().join("sys"),
        },
        kubelet_root: tmp.path().join("kubelet"),
        retry: Retry::default(),
    };
    Some(World {
        lab,
        fake,
        svc,
        pod_ns,
        netns_path,
        _tmp: tmp,
    })
}

impl World {
    fn call<'a>(&'a self, command: &'a str, pod: &'a str, cid: &'a str) -> Call<'a> {
        Call::new(command, NS, pod, cid, &self.netns_path)
    }

    async fn run(&self, call: &Call<'_>) -> Result<Option<String>, Error> {
        dispatch(ctx(&self.svc, call), Ok(())).await
    }

    /// A pod in the test namespace with this `danm.k8s.io/interfaces` annotation and no labels.
    async fn pod(&self, name: &str, interfaces: Value) -> k8s_openapi::api::core::v1::Pod {
        self.lab.pod(NS, name, Some(interfaces), &[]).await
    }

    /// A DanmNet in the test namespace.
    async fn danmnet(&self, name: &str, spec: Value) -> danm_api::Network {
        self.lab.network(NetworkKind::DanmNet, NS, name, spec).await
    }

    async fn macvlan(&self, name: &str, extra: Value) -> danm_api::Network {
        let mut opts = json!({"host_device": "ens1", "cidr": "10.10.0.0/24"});
        for (k, v) in extra.as_object().unwrap() {
            opts[k] = v.clone();
        }
        self.danmnet(
            name,
            json!({"NetworkID": name, "NetworkType": "macvlan", "Options": opts}),
        )
        .await
    }

    async fn pod_links(&self) -> Vec<String> {
        self.fake
            .links(&self.pod_ns)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n != "lo")
            .collect()
    }

    /// Nothing of the pod is left: no DanmEps, no pod links, every network's bitmaps are as created and its blocks
    /// record no owner.
    async fn assert_nothing_left(&self, networks: &[&danm_api::Network]) {
        assert_eq!(self.lab.eps(NS).await.len(), 0, "DanmEps left behind");
        assert_eq!(self.pod_links().await, Vec::<String>::new(), "links left behind");
        for net in networks {
            let (alloc, alloc6, owners) = self.lab.holdings(net).await;
            assert_eq!(
                alloc,
                net.spec.options.alloc,
                "IPv4 left allocated in {}",
                net.name()
            );
            assert_eq!(
                alloc6,
                net.spec.options.alloc6,
                "IPv6 left allocated in {}",
                net.name()
            );
            assert_eq!(owners, 0, "addresses left in the blocks of {}", net.name());
        }
    }
}

fn code_of(r: Result<Option<String>, Error>) -> (u32, String) {
    let e = r.expect_err("the invocation should fail").to_cni();
    (e.code, format!("{} {}", e.msg, e.details))
}

/// What the test delegates answer to VERSION.
const VERSIONS: &str = r#"{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}"#;

/// A delegate plugin script: answers VERSION, logs every other call, then behaves per `add` (shell) on ADD.
fn script_plugin(dir: &std::path::Path, name: &str, log: &std::path::Path, add: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncat > /dev/null\nif [ \"$CNI_COMMAND\" = VERSION ]; then\necho '{VERSIONS}'\nexit 0\nfi\necho \"$CNI_COMMAND $CNI_IFNAME\" >> {}\nif [ \"$CNI_COMMAND\" = ADD ]; then\n{add}\nfi\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Delegates {
    dir: tempfile::TempDir,
    log: PathBuf,
}

fn delegates() -> Delegates {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    script_plugin(dir.path(), "slow", &log, "sleep 30");
    script_plugin(
        dir.path(),
        "failing",
        &log,
        "echo '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"deliberate delegate failure\"}'\nexit 1",
    );
    script_plugin(
        dir.path(),
        "okplugin",
        &log,
        "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.88.0.9/24\"}]}'",
    );
    for name in ["slow", "failing", "okplugin"] {
        std::fs::write(
            dir.path().join(format!("{name}.conf")),
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{name}"}}"#),
        )
        .unwrap();
    }
    Delegates { dir, log }
}

impl Delegates {
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    fn call<'a>(
        &'a self,
        w: &'a World,
        command: &'a str,
        pod: &'a str,
        cid: &'a str,
        timeout: u64,
    ) -> Call<'a> {
        let mut call = w.call(command, pod, cid);
        call.cni_path = vec![self.dir.path().display().to_string()];
        call.config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm","cniDir": self.dir.path(),
                             "resultDir": self.dir.path().join("results"), "timeoutSeconds": timeout});
        call
    }
}

/// A fake sysfs with PF 0000:03:00.0 (`ens2f0`, 4 VFs) and VFs 0000:03:00.1 and .2 (netdevs ens2f0v0/ens2f0v1),
/// and the PF and VF netdevs on the fake host.
async fn fake_sriov(w: &World) {
    fake_sriov_on(&w.fake, &w.svc.sysfs.root).await;
}

async fn fake_sriov_on(fake: &FakeNetlink, root: &std::path::Path) {
    let root = root.to_owned();
    fake.add_sriov_pf(&Netns::Host, "ens2f0", 1500, 4);
    // A fake sysfs: PF 0000:03:00.0 with VFs .1 and .2, whose netdevs are ens2f0v0 / ens2f0v1.
    let devs = root.join("bus/pci/devices");
    std::fs::create_dir_all(devs.join("0000:03:00.0/net/ens2f0")).unwrap();
    for (i, pci) in ["0000:03:00.1", "0000:03:00.2"].iter().enumerate() {
        let name = format!("ens2f0v{i}");
        std::fs::create_dir_all(devs.join(pci).join("net").join(&name)).unwrap();
        std::os::unix::fs::symlink(devs.join("0000:03:00.0"), devs.join(pci).join("physfn")).unwrap();
        std::os::unix::fs::symlink(
            format!("../{pci}"),
            devs.join("0000:03:00.0").join(format!("virtfn{i}")),
        )
        .unwrap();
        if fake.find_link(&Netns::Host, &name).await.unwrap().is_none() {
            fake.add_device(&Netns::Host, &name, 1500);
        }
    }
}

/// A delegate that supports `versions`, logs `<command> <ifname> <cniVersion it was given>` (VERSION included) and
/// answers ADD with a 0.4.0-shaped result for `address`.
fn versioned_plugin(dir: &std::path::Path, name: &str, versions: &[&str], address: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.log"));
    let list = serde_json::to_string(versions).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            r#"#!/bin/sh
cfg=$(cat)
v=$(echo "$cfg" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
echo "$CNI_COMMAND $CNI_IFNAME $v" >> {log}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"'"$v"'","supportedVersions":{list}}}' ;;
ADD) echo '{{"cniVersion":"'"$v"'","ips":[{{"version":"4","address":"{address}"}}]}}' ;;
esac
exit 0
"#,
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

mod kubelet {
    //! A fake kubelet serving PodResources `List` on a unix socket.
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::Arc;

    use danm_cni::podresources::{LIST_PATH, ListPodResourcesRequest, ListPodResourcesResponse};
    use tonic::body::Body;
    use tonic::codegen::{BoxFuture, Context, Poll, Service, http};

    type Answer = Arc<dyn Fn() -> Result<ListPodResourcesResponse, tonic::Status> + Send + Sync>;

    #[derive(Clone)]
    struct Lister(Answer);

    impl tonic::server::NamedService for Lister {
        const NAME: &'static str = "v1.PodResourcesLister";
    }

    struct List(Answer);

    impl tonic::server::UnaryService<ListPodResourcesRequest> for List {
        type Response = ListPodResourcesResponse;
        type Future = BoxFuture<tonic::Response<ListPodResourcesResponse>, tonic::Status>;
        fn call(&mut self, _: tonic::Request<ListPodResourcesRequest>) -> Self::Future {
            let answer = (self.0)();
            Box::pin(async move { answer.map(tonic::Response::new) })
        }
    }

    impl Service<http::Request<Body>> for Lister {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<http::Response<Body>, Infallible>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            let answer = self.0.clone();
            Box::pin(async move {
                if req.uri().path() != LIST_PATH {
                    return Ok(tonic::Status::unimplemented(req.uri().path().to_owned()).into_http());
                }
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(List(answer), req).await)
            })
        }
    }

    /// Serves `answer` on `socket` until the returned task is aborted.
    pub fn serve(
        socket: &Path,
        answer: impl Fn() -> Result<ListPodResourcesResponse, tonic::Status> + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(stream, _)| stream);
            Some((conn, l))
        });
        let service = Lister(Arc::new(answer));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        })
    }
}

/// A pod's entry for [`pod_resources`]: namespace, name, and per container one resource with its device ids.
type PodEntry<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [&'a str])]);

fn pod_resources(pods: &[PodEntry<'_>]) -> danm_cni::podresources::ListPodResourcesResponse {
    use danm_cni::podresources::{ContainerDevices, ContainerResources, PodResources};
    danm_cni::podresources::ListPodResourcesResponse {
        pod_resources: pods
            .iter()
            .map(|(ns, name, containers)| PodResources {
                name: (*name).to_owned(),
                namespace: (*ns).to_owned(),
                containers: containers
                    .iter()
                    .enumerate()
                    .map(|(i, (resource, ids))| ContainerResources {
                        name: format!("c{i}"),
                        devices: vec![ContainerDevices {
                            resource_name: (*resource).to_owned(),
                            device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                        }],
                    })
                    .collect(),
            })
            .collect(),
    }
}

async fn sriov_network(w: &World) {
    w.danmnet(
        "sriov",
        json!({"NetworkID":"sriov","NetworkType":"sriov",
        "Options":{"device_pool":"nokia.k8s.io/sriov_ens2f0","vlan":300,"cidr":"10.24.0.0/24"}}),
    )
    .await;
}

/// Binds VF `pci` of the fake sysfs to the user-space driver `driver`: `<pci>/driver` points at it and the VF has
/// no netdev any more.
fn bind_to(root: &std::path::Path, pci: &str, driver: &str) {
    let drivers = root.join("bus/pci/drivers").join(driver);
    std::fs::create_dir_all(&drivers).unwrap();
    let dev = root.join("bus/pci/devices").join(pci);
    std::fs::remove_dir_all(dev.join("net")).unwrap();
    std::os::unix::fs::symlink(&drivers, dev.join("driver")).unwrap();
}

fn sriov_config(
    device_id: &str,
    vlan: u16,
    mac: Option<&str>,
    ips: &[&str],
) -> danm_cni::native::NativeConfig {
    danm_cni::native::NativeConfig::Sriov {
        device_id: device_id.to_owned(),
        vlan,
        mac: mac.map(|m| m.parse().unwrap()),
        mtu: None,
        ips: ips.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

/// A delegate whose VERSION behaviour is the shell `on_version`; it logs `<command> <cniVersion>` and answers ADD
/// with an empty result.
fn plugin_answering_version(dir: &std::path::Path, name: &str, on_version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.log"));
    std::fs::write(
        dir.join(name),
        format!(
            r#"#!/bin/sh
cfg=$(cat)
v=$(echo "$cfg" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
echo "$CNI_COMMAND $v" >> {log}
if [ "$CNI_COMMAND" = VERSION ]; then
{on_version}
fi
exit 0
"#,
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join(format!("{name}.conf")),
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{name}"}}"#),
    )
    .unwrap();
    log
}
