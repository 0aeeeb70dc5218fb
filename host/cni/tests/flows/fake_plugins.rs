//! Delegate plugins written in Rust for the flow tests, run through danm's `PluginRunner` seam instead of as shell
//! scripts: each answers VERSION as told, records every call (verb, interface, the config it read) and answers the
//! other verbs as told.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use danm_cni::delegate::{DelegateEnv, PluginCall, PluginId, PluginRunner};
use danm_cni::error::Error;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// What a plugin does for one verb.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Prints this and succeeds.
    Print(Value),
    /// Prints nothing and succeeds.
    Nothing,
    /// Fails, printing a CNI error with this code and message.
    Fail(u32, String),
    /// Never answers (until danm drops the call at its deadline).
    Hang,
}

/// How a plugin answers VERSION.
#[derive(Clone, Debug)]
pub enum Versions {
    /// `{"cniVersion": <asked>, "supportedVersions": [...]}`.
    Supports(Vec<String>),
    /// Prints nothing.
    Silent,
    /// Fails as a CNI 0.1.0 plugin does: "unknown CNI_COMMAND: VERSION".
    Unknown,
}

/// One delegate plugin.
#[derive(Clone, Debug)]
pub struct FakePlugin {
    pub versions: Versions,
    pub add: Answer,
    pub check: Answer,
    pub del: Answer,
}

impl FakePlugin {
    /// Speaks 0.3.1 to 1.1.0 and answers ADD with `add`; CHECK and DEL succeed.
    pub fn adding(add: Answer) -> Self {
        FakePlugin {
            versions: Versions::Supports(["0.3.1", "0.4.0", "1.0.0", "1.1.0"].map(str::to_owned).to_vec()),
            add,
            check: Answer::Nothing,
            del: Answer::Nothing,
        }
    }

    pub fn versions(mut self, versions: Versions) -> Self {
        self.versions = versions;
        self
    }
}

/// A call a plugin received.
#[derive(Clone, Debug)]
pub struct Received {
    pub plugin: String,
    pub command: String,
    pub ifname: String,
    /// The whole config it read on stdin.
    pub config: Value,
}

impl Received {
    /// The `cniVersion` it was given.
    pub fn version(&self) -> &str {
        self.config["cniVersion"].as_str().unwrap_or_default()
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A set of plugins by `type`, and every call they received.
#[derive(Debug)]
pub struct FakePlugins {
    id: u64,
    plugins: Mutex<BTreeMap<String, FakePlugin>>,
    received: Mutex<Vec<Received>>,
}

impl Default for FakePlugins {
    fn default() -> Self {
        FakePlugins {
            id: NEXT.fetch_add(1, Ordering::SeqCst),
            plugins: Mutex::default(),
            received: Mutex::default(),
        }
    }
}

impl FakePlugins {
    pub fn add(&self, name: &str, plugin: FakePlugin) {
        self.plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), plugin);
    }

    /// Changes what `name` answers to CHECK from now on.
    pub fn set_check(&self, name: &str, answer: Answer) {
        if let Some(p) = self
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(name)
        {
            p.check = answer;
        }
    }

    /// Every call received, VERSION included, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `"<verb> <ifname>"` of every call but VERSION, in order.
    pub fn calls(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.command != "VERSION")
            .map(|r| format!("{} {}", r.command, r.ifname))
            .collect()
    }

    /// `"<verb> <ifname> <cniVersion given>"` of every call `plugin` received, VERSION included, in order.
    pub fn calls_of(&self, plugin: &str) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.plugin == plugin)
            .map(|r| format!("{} {} {}", r.command, r.ifname, r.version()))
            .collect()
    }

    /// The config `plugin` read at its last `command` on `ifname`.
    pub fn stdin(&self, plugin: &str, command: &str, ifname: &str) -> Option<Value> {
        self.received()
            .into_iter()
            .rev()
            .find(|r| r.plugin == plugin && r.command == command && r.ifname == ifname)
            .map(|r| r.config)
    }
}

impl PluginRunner for FakePlugins {
    fn identify(&self, plugin: &str, env: &DelegateEnv) -> Result<PluginId, Error> {
        let known = self
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(plugin);
        if !known {
            return Err(Error::Delegate {
                plugin: plugin.to_owned(),
                command: "lookup".into(),
                ifname: String::new(),
                code: None,
                message: format!("plugin binary not found in CNI_PATH {:?}", env.cni_path),
            });
        }
        Ok(PluginId {
            path: format!("fake-plugins-{}/{plugin}", self.id).into(),
            stamp: None,
        })
    }

    fn run<'a>(&'a self, call: PluginCall<'a>) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            self.identify(call.plugin, call.env)?;
            self.received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Received {
                    plugin: call.plugin.to_owned(),
                    command: call.command.to_owned(),
                    ifname: call.ifname.to_owned(),
                    config: call.config.clone(),
                });
            let plugin = self
                .plugins
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(call.plugin)
                .cloned()
                .expect("identified above");
            let answer = match call.command {
                "VERSION" => match plugin.versions {
                    Versions::Supports(list) => Answer::Print(
                        json!({"cniVersion": call.config["cniVersion"], "supportedVersions": list}),
                    ),
                    Versions::Silent => Answer::Nothing,
                    Versions::Unknown => Answer::Fail(4, "unknown CNI_COMMAND: VERSION".into()),
                },
                "ADD" => plugin.add,
                "CHECK" => plugin.check,
                "DEL" => plugin.del,
                other => Answer::Fail(4, format!("unknown CNI_COMMAND: {other}")),
            };
            match answer {
                Answer::Print(v) => Ok(v.to_string().into_bytes()),
                Answer::Nothing => Ok(Vec::new()),
                Answer::Fail(code, msg) => Err(call.failure(Some(code), msg)),
                Answer::Hang => futures::future::pending().await,
            }
        })
    }
}
