//! Delegation: running a delegate plugin through a [`PluginRunner`] (the real one starts `<CNI_PATH>/<type>` as a
//! process, as libcni does) with a config (single plugin or a `.conflist` chain), loading static delegate configs
//! from `cniDir` and swapping their IPAM for fakeipam (behaviour §4.3, §4.6, §4.7), and negotiating the CNI version
//! each delegate speaks (`CNI_COMMAND=VERSION`, asked once per plugin identity per process).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::PoisonError;
use std::sync::{Arc, LazyLock, Mutex};

use danm_core::cni::CniResult;
use danm_core::stamp::FileStamp;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::Error;

/// The environment a delegate gets: only these variables (behaviour §4.7), plus `CNI_COMMAND` and
/// `CNI_IFNAME`; and what runs it.
#[derive(Clone, Debug)]
pub struct DelegateEnv {
    pub container_id: String,
    pub netns: String,
    pub args: String,
    /// Directories searched for plugin binaries; also passed as `CNI_PATH`.
    pub cni_path: Vec<String>,
    /// `PATH` of the danm process.
    pub path: String,
    /// What runs the plugins: [`ProcessRunner`] in the `danm` binary.
    pub runner: Arc<dyn PluginRunner>,
}

impl Default for DelegateEnv {
    fn default() -> Self {
        DelegateEnv {
            container_id: String::new(),
            netns: String::new(),
            args: String::new(),
            cni_path: Vec::new(),
            path: String::new(),
            runner: Arc::new(ProcessRunner),
        }
    }
}

/// One verb of one delegate plugin: what a runner needs to run it.
#[derive(Clone, Copy, Debug)]
pub struct PluginCall<'a> {
    /// The plugin's `type`.
    pub plugin: &'a str,
    /// `CNI_COMMAND`.
    pub command: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The config it reads on stdin.
    pub config: &'a Value,
    pub env: &'a DelegateEnv,
}

impl PluginCall<'_> {
    /// The error of this call failing with CNI `code` (if it printed one) and `message`.
    pub fn failure(&self, code: Option<u32>, message: impl Into<String>) -> Error {
        Error::Delegate {
            plugin: self.plugin.to_owned(),
            command: self.command.to_owned(),
            ifname: self.ifname.to_owned(),
            code,
            message: message.into(),
        }
    }
}

/// What identifies a delegate plugin as it would run now; its VERSION answer is kept per identity for the process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginId {
    /// Where it is (a binary's path for [`ProcessRunner`]).
    pub path: PathBuf,
    /// The binary's file stamp, so a replaced binary is asked again.
    pub stamp: Option<FileStamp>,
}

/// How delegate plugins are run. [`ProcessRunner`] is the real one; tests give danm plugins written in Rust that
/// answer the same calls, so no test writes shell scripts.
pub trait PluginRunner: Send + Sync + std::fmt::Debug {
    /// Which plugin `plugin` is, as it would run now; fails as a missing plugin would.
    fn identify(&self, plugin: &str, env: &DelegateEnv) -> Result<PluginId, Error>;
    /// Runs one verb: the plugin's stdout on success; on failure [`Error::Delegate`] with the CNI error code and
    /// message it printed, if any.
    fn run<'a>(&'a self, call: PluginCall<'a>) -> BoxFuture<'a, Result<Vec<u8>, Error>>;
}

/// Runs a delegate as libcni does: `<CNI_PATH>/<type>` as a child process with only the CNI variables set, the
/// config on stdin, the result on stdout; the child is killed if the call is dropped (the ADD deadline).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessRunner;

impl PluginRunner for ProcessRunner {
    fn identify(&self, plugin: &str, env: &DelegateEnv) -> Result<PluginId, Error> {
        let binary = find_plugin(plugin, &env.cni_path)?;
        let meta = std::fs::metadata(&binary).map_err(|e| Error::Delegate {
            plugin: plugin.to_owned(),
            command: "VERSION".into(),
            ifname: String::new(),
            code: None,
            message: format!("cannot stat {}: {e}", binary.display()),
        })?;
        Ok(PluginId {
            stamp: Some(FileStamp::of(&meta)),
            path: binary,
        })
    }

    fn run<'a>(&'a self, call: PluginCall<'a>) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(run_process(call))
    }
}

/// One plugin invocation of a chain: the binary name (`type`) and its config.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

impl Chain {
    /// A chain of one plugin config.
    pub fn single(config: Value) -> Self {
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let cni_version = config
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Chain {
            name,
            cni_version,
            plugins: vec![config],
        }
    }

    /// The config libcni would give plugin `i`: the list's `name` and `cniVersion` injected, `prevResult` if any.
    fn plugin_config(&self, i: usize, prev: Option<&Value>) -> Value {
        let mut conf = self.plugins[i].clone();
        if let Value::Object(map) = &mut conf {
            if !self.name.is_empty() {
                map.insert("name".into(), json!(self.name));
            }
            if !self.cni_version.is_empty() {
                map.insert("cniVersion".into(), json!(self.cni_version));
            }
            if let Some(prev) = prev {
                map.insert("prevResult".into(), prev.clone());
            }
        }
        conf
    }

    /// The version the chain asks for: the list's, else the first plugin's own `cniVersion`.
    fn effective_version(&self) -> String {
        if !self.cni_version.is_empty() {
            return self.cni_version.clone();
        }
        self.plugins
            .first()
            .and_then(|p| p.get("cniVersion"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn plugin_type(&self, i: usize) -> String {
        self.plugins[i]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// Finds `plugin` in the search path.
pub fn find_plugin(plugin: &str, search: &[String]) -> Result<PathBuf, Error> {
    if plugin.is_empty() || plugin.contains('/') {
        return Err(Error::Translated(format!("invalid plugin type {plugin:?}")));
    }
    search
        .iter()
        .map(|d| Path::new(d).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Delegate {
            plugin: plugin.to_owned(),
            command: "lookup".into(),
            ifname: String::new(),
            code: None,
            message: format!("plugin binary not found in CNI_PATH {search:?}"),
        })
}

/// The result versions danm reads (and so can convert to the version it was asked for), oldest first.
pub const READABLE_VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// `major.minor.patch` as numbers, for ordering versions.
fn version_key(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let key = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(key)
}

/// A plugin's VERSION answer: its `supportedVersions`, or `None` when it gave no usable answer.
type VersionAnswer = Option<Vec<String>>;

/// The VERSION answers of this process, one per plugin identity; concurrent interfaces on one plugin share one
/// question.
static VERSION_ANSWERS: LazyLock<Mutex<HashMap<PluginId, Arc<tokio::sync::OnceCell<VersionAnswer>>>>> =
    LazyLock::new(Default::default);

/// The versions plugin `plugin` supports, asked with `CNI_COMMAND=VERSION` at most once per binary per process (one
/// process is one danm invocation). `None` when the plugin gives no usable answer (it failed, or printed something
/// that is not version info): it is then run at the requested version and refuses by itself if it cannot speak it.
/// As libcni does, a plugin that fails with "unknown CNI_COMMAND: VERSION" supports 0.1.0 and a `0.2.0` answer
/// without `supportedVersions` means 0.1.0 and 0.2.0.
pub async fn plugin_versions(
    plugin: &str,
    requested: &str,
    env: &DelegateEnv,
) -> Result<VersionAnswer, Error> {
    let id = env.runner.identify(plugin, env)?;
    let cell = VERSION_ANSWERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id)
        .or_default()
        .clone();
    Ok(cell
        .get_or_init(|| ask_version(plugin, requested, env))
        .await
        .clone())
}

async fn ask_version(plugin: &str, requested: &str, env: &DelegateEnv) -> VersionAnswer {
    let out = match exec(plugin, "VERSION", "", &json!({"cniVersion": requested}), env).await {
        Ok(out) => out,
        Err(Error::Delegate { message, .. }) if message.contains("unknown CNI_COMMAND: VERSION") => {
            return Some(vec!["0.1.0".into()]);
        }
        Err(e) => {
            tracing::warn!(plugin, error = %e, "the delegate did not answer VERSION; running it at the requested version");
            return None;
        }
    };
    let value: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    let listed: Option<Vec<String>> = value
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    match listed {
        Some(list) if !list.is_empty() => Some(list),
        _ if value.get("cniVersion").and_then(Value::as_str) == Some("0.2.0") => {
            Some(vec!["0.1.0".into(), "0.2.0".into()])
        }
        _ => {
            tracing::warn!(
                plugin,
                output = %String::from_utf8_lossy(&out).trim(),
                "the delegate's VERSION answer has no supportedVersions; running it at the requested version"
            );
            None
        }
    }
}

/// The version a chain runs at: the highest version danm reads that is not above `requested`, not below
/// `minimum`, and that every plugin with a known answer supports (`answers`: plugin type and its versions). Nothing in
/// common is error 7 ("incompatible CNI version") naming each plugin's list and danm's.
pub fn pick_version(
    chain_name: &str,
    requested: &str,
    minimum: &str,
    answers: &[(String, Vec<String>)],
) -> Result<String, Error> {
    let (Some(top), Some(bottom)) = (version_key(requested), version_key(minimum)) else {
        return Ok(requested.to_owned());
    };
    let acceptable: Vec<&str> = READABLE_VERSIONS
        .iter()
        .copied()
        .filter(|v| version_key(v).is_some_and(|k| k <= top && k >= bottom))
        .collect();
    let chosen = acceptable
        .iter()
        .rev()
        .find(|v| answers.iter().all(|(_, list)| list.iter().any(|s| s == *v)));
    match chosen {
        Some(v) => Ok((*v).to_owned()),
        None => {
            let plugins: Vec<String> = answers
                .iter()
                .map(|(plugin, list)| format!("plugin {plugin} supports {list:?}"))
                .collect();
            Err(Error::Cni(
                danm_core::cni::CniError::new(
                    danm_core::cni::codes::INVALID_NETWORK_CONFIG,
                    "incompatible CNI version",
                )
                .with_details(format!(
                    "delegate {chain_name:?}: {}; danm asked for {requested} and can run a delegate at {acceptable:?}",
                    plugins.join("; ")
                )),
            ))
        }
    }
}

/// The chain at the version its plugins negotiated (see [`pick_version`]); unchanged when the chain names no
/// version or no plugin answered VERSION. `minimum` is `0.4.0` for CHECK.
pub async fn negotiate(chain: &Chain, env: &DelegateEnv, minimum: &str) -> Result<Chain, Error> {
    let requested = chain.effective_version();
    if requested.is_empty() || version_key(&requested).is_none() {
        return Ok(chain.clone());
    }
    let mut answers: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..chain.plugins.len() {
        let plugin = chain.plugin_type(i);
        if answers.iter().any(|(p, _)| *p == plugin) {
            continue;
        }
        if let Some(list) = plugin_versions(&plugin, &requested, env).await? {
            answers.push((plugin, list));
        }
    }
    let version = pick_version(&chain.name, &requested, minimum, &answers)?;
    if version != requested {
        tracing::info!(
            chain = chain.name,
            requested,
            version,
            "delegate runs at a lower CNI version"
        );
    }
    let mut chain = chain.clone();
    chain.cni_version = version;
    Ok(chain)
}

/// Runs one verb of a delegate through the environment's runner. Returns its stdout on success; a failure is
/// [`Error::Delegate`] carrying the plugin's CNI error code and message when it printed one.
pub async fn exec(
    plugin: &str,
    command: &str,
    ifname: &str,
    config: &Value,
    env: &DelegateEnv,
) -> Result<Vec<u8>, Error> {
    let call = PluginCall {
        plugin,
        command,
        ifname,
        config,
        env,
    };
    env.runner.run(call).await
}

/// [`ProcessRunner`]'s work: one plugin binary run as a child process.
async fn run_process(call: PluginCall<'_>) -> Result<Vec<u8>, Error> {
    let PluginCall {
        plugin,
        command,
        ifname,
        config,
        env,
    } = call;
    let binary = find_plugin(plugin, &env.cni_path)?;
    tracing::debug!(plugin, command, ifname, binary = %binary.display(), "running a delegate");
    let fail = |code: Option<u32>, message: String| call.failure(code, message);
    let mut child = tokio::process::Command::new(&binary)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_ARGS", &env.args)
        .env("CNI_PATH", env.cni_path.join(":"))
        .env("PATH", &env.path)
        .env("CNI_IFNAME", ifname)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(None, format!("OS exec call failed: {e}")))?;
    let input = config.to_string();
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(input.as_bytes()).await {
            Ok(()) => {}
            // The plugin finished without reading all its input (VERSION answers need none): its exit status and
            // output decide, as for libcni.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!(plugin, command, "the delegate did not read its whole stdin");
            }
            Err(e) => return Err(fail(None, format!("writing stdin: {e}"))),
        }
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(None, format!("OS exec call failed: {e}")))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    match danm_core::cni::CniError::from_json(&out.stdout) {
        Some(e) => Err(fail(Some(e.code), e.to_string())),
        None => Err(fail(
            None,
            format!("{}: {}", out.status, String::from_utf8_lossy(&out.stdout).trim()),
        )),
    }
}

/// ADD through a chain at the negotiated version; returns the last plugin's result (an empty result when it printed
/// nothing), read from whatever version the plugin wrote, so it can be printed in the version danm was asked for,
/// and that result as the plugin printed it (kept for the chain's CHECK and DEL).
pub async fn add(
    chain: &Chain,
    ifname: &str,
    env: &DelegateEnv,
) -> Result<(CniResult, Option<Value>), Error> {
    let chain = &negotiate(chain, env, "0.0.0").await?;
    let mut prev: Option<Value> = None;
    for i in 0..chain.plugins.len() {
        let plugin = chain.plugin_type(i);
        let out = exec(
            &plugin,
            "ADD",
            ifname,
            &chain.plugin_config(i, prev.as_ref()),
            env,
        )
        .await?;
        if out.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(&out).map_err(|e| Error::Delegate {
            plugin: plugin.clone(),
            command: "ADD".into(),
            ifname: ifname.to_owned(),
            code: Some(danm_core::cni::codes::DECODING_FAILURE),
            message: format!("its result is not JSON: {e}"),
        })?;
        prev = Some(value);
    }
    match prev {
        None => Ok((CniResult::default(), None)),
        Some(v) => {
            let result = CniResult::from_value(v.clone())
                .map(|r| r.result)
                .map_err(Error::Cni)?;
            Ok((result, Some(v)))
        }
    }
}

/// DEL through a chain at the negotiated version, last plugin first, each given the chain's ADD result as
/// `prevResult` when it was kept (from CNI 0.4.0, as libcni does); every plugin is called even if one fails, the
/// first error is returned.
pub async fn del(chain: &Chain, ifname: &str, env: &DelegateEnv, added: Option<&Value>) -> Result<(), Error> {
    let chain = &negotiate(chain, env, "0.0.0").await?;
    let prev = added.filter(|_| supports_check(&chain.effective_version()));
    let mut first_err = None;
    for i in (0..chain.plugins.len()).rev() {
        let plugin = chain.plugin_type(i);
        if let Err(e) = exec(&plugin, "DEL", ifname, &chain.plugin_config(i, prev), env).await {
            tracing::warn!(plugin, ifname, error = %e, "delegate DEL failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Whether a chain at `version` knows CHECK and `prevResult` on DEL (CNI 0.4.0 and later).
fn supports_check(version: &str) -> bool {
    version_key(version).is_some_and(|v| v >= (0, 4, 0))
}

/// CHECK through a chain at the negotiated version, first plugin first, each given the chain's ADD result as
/// `prevResult` (as libcni does); the first failing plugin's error. A chain that speaks a version before 0.4.0,
/// which has no CHECK, is not called.
pub async fn check(chain: &Chain, ifname: &str, env: &DelegateEnv, added: &Value) -> Result<(), Error> {
    let chain = &negotiate(chain, env, "0.0.0").await?;
    if !supports_check(&chain.effective_version()) {
        return Ok(());
    }
    for i in 0..chain.plugins.len() {
        let plugin = chain.plugin_type(i);
        exec(
            &plugin,
            "CHECK",
            ifname,
            &chain.plugin_config(i, Some(added)),
            env,
        )
        .await?;
    }
    Ok(())
}

/// The fakeipam block for danm's addresses (behaviour §4.6); `None` when there is no address.
pub fn fakeipam_block(ip4: &str, ip6: &str) -> Option<Value> {
    let mut ips = Vec::new();
    if crate::ipam::is_real(ip4) {
        ips.push(json!({"ipcidr": ip4, "version": 4}));
    }
    if crate::ipam::is_real(ip6) {
        ips.push(json!({"ipcidr": ip6, "version": 6}));
    }
    (!ips.is_empty()).then(|| json!({"type": "fakeipam", "ips": ips}))
}

/// Loads the static delegate config of NetworkID `network_id` for NetworkType `network_type`:
/// `<cni_dir>/<id>.conf`, else `<cni_dir>/<id>.conflist`. With `ipam` set, the IPAM of the config (every chain
/// plugin that has one, else the first) is replaced by it. A `.conf`'s plugin binary is the NetworkType
/// (behaviour §4.3).
pub fn load_static(
    cni_dir: &str,
    network_id: &str,
    network_type: &str,
    ipam: Option<&Value>,
) -> Result<Chain, Error> {
    let conf = Path::new(cni_dir).join(format!("{network_id}.conf"));
    let conflist = Path::new(cni_dir).join(format!("{network_id}.conflist"));
    let err = |file: &Path, reason: String| Error::StaticConfig {
        file: file.display().to_string(),
        plugin: network_type.to_owned(),
        reason,
    };
    let (file, is_list) = if conf.is_file() {
        (conf, false)
    } else if conflist.is_file() {
        (conflist, true)
    } else {
        return Err(err(
            &conf,
            format!("neither {network_id}.conf nor {network_id}.conflist exists in {cni_dir}"),
        ));
    };
    let text = std::fs::read(&file).map_err(|e| err(&file, e.to_string()))?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| err(&file, format!("not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(err(&file, "not a JSON object".into()));
    };
    if !is_list {
        map.insert("type".into(), json!(network_type));
        if let Some(ipam) = ipam {
            map.insert("ipam".into(), ipam.clone());
        }
        return Ok(Chain::single(Value::Object(map)));
    }
    let name = map
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let cni_version = map
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(Value::Array(mut plugins)) = map.remove("plugins") else {
        return Err(err(&file, "a .conflist without a \"plugins\" list".into()));
    };
    if plugins.is_empty() || plugins.iter().any(|p| !p.is_object()) {
        return Err(err(
            &file,
            "\"plugins\" must be a non-empty list of objects".into(),
        ));
    }
    if let Some(ipam) = ipam {
        let mut replaced = false;
        for p in plugins.iter_mut() {
            if let Some(obj) = p.as_object_mut().filter(|o| o.contains_key("ipam")) {
                obj.insert("ipam".into(), ipam.clone());
                replaced = true;
            }
        }
        if !replaced && let Some(obj) = plugins[0].as_object_mut() {
            obj.insert("ipam".into(), ipam.clone());
        }
    }
    Ok(Chain {
        name,
        cni_version,
        plugins,
    })
}

/// Replaces the `cniVersion` of a translated/static config with the version danm negotiated, when the config has
/// none.
pub fn ensure_version(config: &mut Map<String, Value>, version: &str) {
    let has_version = config
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_version {
        config.insert("cniVersion".into(), json!(version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plugin_that_answers_without_reading_its_whole_stdin_is_not_a_failure() {
        // Debian's bridge answers VERSION without reading stdin; a config larger than the pipe buffer makes the
        // write fail with EPIPE once it has exited, which once turned its answer into "no answer" under load.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("quick");
        std::fs::write(
            &script,
            "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = DelegateEnv {
            container_id: "c".into(),
            netns: String::new(),
            args: String::new(),
            cni_path: vec![dir.path().display().to_string()],
            path: "/usr/bin:/bin".into(),
            ..DelegateEnv::default()
        };
        let big = json!({"cniVersion": "1.1.0", "pad": "x".repeat(1 << 20)});
        let out = exec("quick", "VERSION", "", &big, &env)
            .await
            .expect("the answer counts");
        let answer: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(answer["supportedVersions"][1], "1.0.0");
    }

    #[test]
    fn a_static_conf_gets_the_network_type_as_plugin_and_fakeipam_when_danm_allocated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("flannel.conf"),
            r#"{"cniVersion":"0.3.1","name":"fl","type":"x","ipam":{"type":"host-local"}}"#,
        )
        .unwrap();
        let ipam = fakeipam_block("10.0.0.5/24", "none").unwrap();
        let chain = load_static(dir.path().to_str().unwrap(), "flannel", "flannel", Some(&ipam)).unwrap();
        assert_eq!(chain.plugins.len(), 1);
        assert_eq!(chain.plugins[0]["type"], "flannel");
        assert_eq!(
            chain.plugins[0]["ipam"],
            json!({"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]})
        );
        let own = load_static(dir.path().to_str().unwrap(), "flannel", "flannel", None).unwrap();
        assert_eq!(own.plugins[0]["ipam"]["type"], "host-local");
    }

    #[test]
    fn a_conflist_chain_has_its_ipam_swapped_in_the_plugins_that_have_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("br.conflist"),
            r#"{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"tuning"}]}"#,
        )
        .unwrap();
        let ipam = fakeipam_block("", "fd00::5/64").unwrap();
        let chain = load_static(dir.path().to_str().unwrap(), "br", "bridge", Some(&ipam)).unwrap();
        assert_eq!(chain.name, "br");
        assert_eq!(chain.plugins[0]["ipam"]["ips"][0]["version"], 6);
        assert!(chain.plugins[1].get("ipam").is_none());
        let conf = chain.plugin_config(1, Some(&json!({"cniVersion":"1.0.0"})));
        assert_eq!(conf["name"], "br");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["prevResult"]["cniVersion"], "1.0.0");
    }

    #[test]
    fn a_missing_static_config_names_the_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_static(dir.path().to_str().unwrap(), "nope", "flannel", None).unwrap_err();
        assert!(e.to_string().contains("nope.conf"), "{e}");
        assert_eq!(e.code(), danm_core::cni::codes::INVALID_NETWORK_CONFIG);
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_chosen_version_is_the_highest_shared_one_never_above_the_request() {
        let debian = list(&["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
        let answers = vec![("bridge".to_owned(), debian.clone())];
        assert_eq!(pick_version("br", "1.1.0", "0.0.0", &answers).unwrap(), "1.0.0");
        assert_eq!(pick_version("br", "0.4.0", "0.0.0", &answers).unwrap(), "0.4.0");
        assert_eq!(pick_version("br", "0.3.1", "0.0.0", &answers).unwrap(), "0.3.1");
        // A chain speaks one version: the highest every plugin supports.
        let chain = vec![
            ("bridge".to_owned(), debian),
            ("old".to_owned(), list(&["0.3.1", "0.4.0"])),
        ];
        assert_eq!(pick_version("br", "1.1.0", "0.0.0", &chain).unwrap(), "0.4.0");
        // CHECK needs 0.4.0 or newer.
        let e = pick_version("br", "1.1.0", "0.4.0", &[("old".to_owned(), list(&["0.3.1"]))]).unwrap_err();
        assert_eq!(e.code(), danm_core::cni::codes::INVALID_NETWORK_CONFIG);
        // No answer at all: the requested version stands.
        assert_eq!(pick_version("br", "1.1.0", "0.0.0", &[]).unwrap(), "1.1.0");
    }

    #[test]
    fn no_shared_version_is_error_7_naming_the_plugin_and_both_lists() {
        let answers = vec![("future".to_owned(), list(&["1.2.0"]))];
        let e = pick_version("fut", "0.4.0", "0.0.0", &answers).unwrap_err();
        assert_eq!(e.code(), danm_core::cni::codes::INVALID_NETWORK_CONFIG);
        let text = e.to_string();
        assert!(text.starts_with("incompatible CNI version"), "{text}");
        assert!(text.contains(r#"plugin future supports ["1.2.0"]"#), "{text}");
        assert!(
            text.contains(r#"["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"]"#),
            "{text}"
        );
    }

    #[test]
    fn fakeipam_block_is_absent_without_real_addresses() {
        assert_eq!(fakeipam_block("", "none"), None);
    }
}
