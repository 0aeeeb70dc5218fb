//! The ADD/DEL/CHECK/GC/STATUS flows on the recording netlink fake, against the in-process lab API server and the
//! real backend plugins, one module per verb or concern (one test binary). Each failure test checks that nothing is
//! left: no DanmEp, no allocated address, no link. This file holds the shared world and helpers.

mod add;
#[path = "../common/mod.rs"]
mod common;
mod del;
mod delegate;
mod fake_plugins;
mod ipam;
mod lifecycle;
mod npwg;
mod sriov;

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
use fake_plugins::{Answer, FakePlugin, FakePlugins, Versions};
use serde_json::{Value, json};

const NS: &str = "default";

struct World {
    lab: Lab,
    fake: Arc<FakeNetlink>,
    /// The delegate plugins this world's invocations run.
    plugins: Arc<FakePlugins>,
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
    let delegates = Arc::new(FakePlugins::default());
    let svc = Services {
        api: lab.cni.clone(),
        netlink: fake.clone(),
        translator,
        sysfs: Sysfs {
            root: tmp.path().join("sys"),
        },
        kubelet_root: tmp.path().join("kubelet"),
        retry: Retry::default(),
        delegates: delegates.clone(),
    };
    Some(World {
        lab,
        fake,
        plugins: delegates,
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

/// A static delegate config `<dir>/<name>.conf` naming plugin `plugin`.
fn static_conf(dir: &std::path::Path, name: &str, plugin: &str, version: &str) {
    std::fs::write(
        dir.join(format!("{name}.conf")),
        format!(r#"{{"cniVersion":"{version}","name":"{name}","type":"{plugin}"}}"#),
    )
    .unwrap();
}

/// Three delegates with static configs of their name: `slow` never answers ADD, `failing` fails it with code 7,
/// `okplugin` answers it with 10.88.0.9/24.
struct Delegates<'w> {
    dir: tempfile::TempDir,
    plugins: &'w FakePlugins,
}

fn delegates(w: &World) -> Delegates<'_> {
    let dir = tempfile::tempdir().unwrap();
    w.plugins.add("slow", FakePlugin::adding(Answer::Hang));
    w.plugins.add(
        "failing",
        FakePlugin::adding(Answer::Fail(7, "deliberate delegate failure".into())),
    );
    w.plugins.add(
        "okplugin",
        FakePlugin::adding(Answer::Print(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.88.0.9/24"}]}),
        )),
    );
    for name in ["slow", "failing", "okplugin"] {
        static_conf(dir.path(), name, name, "1.0.0");
    }
    Delegates {
        dir,
        plugins: &w.plugins,
    }
}

impl Delegates<'_> {
    /// `"<verb> <ifname>"` of every call but VERSION.
    fn calls(&self) -> Vec<String> {
        self.plugins.calls()
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

/// A delegate that supports `versions` and answers ADD with a 0.4.0-shaped result for `address`.
fn versioned_plugin(w: &World, name: &str, versions: &[&str], address: &str) {
    w.plugins.add(
        name,
        FakePlugin::adding(Answer::Print(
            json!({"cniVersion":"0.4.0","ips":[{"version":"4","address": address}]}),
        ))
        .versions(Versions::Supports(
            versions.iter().map(|v| (*v).to_owned()).collect(),
        )),
    );
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

/// A delegate with a static config of its name whose VERSION answer is `versions`; it answers ADD with nothing.
fn plugin_answering_version(w: &World, dir: &std::path::Path, name: &str, versions: Versions) {
    w.plugins
        .add(name, FakePlugin::adding(Answer::Nothing).versions(versions));
    static_conf(dir, name, name, "1.0.0");
}
