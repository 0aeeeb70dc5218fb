//! Delegation: running `<CNI_PATH>/<type>` with a config (single plugin or a `.conflist` chain), loading static
//! delegate configs from `cniDir` and swapping their IPAM for fakeipam (spec §4.3, §4.6, §4.7).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use danm_core::cni::CniResult;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::Error;

/// The environment a delegate gets: only these variables (spec §4.7), plus `CNI_COMMAND` and `CNI_IFNAME`.
#[derive(Clone, Debug, Default)]
pub struct DelegateEnv {
    pub container_id: String,
    pub netns: String,
    pub args: String,
    /// Directories searched for plugin binaries; also passed as `CNI_PATH`.
    pub cni_path: Vec<String>,
    /// `PATH` of the danm process.
    pub path: String,
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

/// Runs one plugin binary. Returns its stdout on success; a non-zero exit becomes [`Error::Delegate`] carrying the
/// plugin's CNI error code and message when it printed one. The child is killed if the future is dropped.
pub async fn exec(
    plugin: &str,
    command: &str,
    ifname: &str,
    config: &Value,
    env: &DelegateEnv,
) -> Result<Vec<u8>, Error> {
    let binary = find_plugin(plugin, &env.cni_path)?;
    let fail = |code: Option<u32>, message: String| Error::Delegate {
        plugin: plugin.to_owned(),
        command: command.to_owned(),
        ifname: ifname.to_owned(),
        code,
        message,
    };
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
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| fail(None, format!("writing stdin: {e}")))?;
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

/// ADD through a chain; returns the last plugin's result (an empty result when it printed nothing).
pub async fn add(chain: &Chain, ifname: &str, env: &DelegateEnv) -> Result<CniResult, Error> {
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
        None => Ok(CniResult::default()),
        Some(v) => CniResult::from_value(v).map(|r| r.result).map_err(Error::Cni),
    }
}

/// DEL through a chain, last plugin first; every plugin is called even if one fails, the first error is returned.
pub async fn del(chain: &Chain, ifname: &str, env: &DelegateEnv) -> Result<(), Error> {
    let mut first_err = None;
    for i in (0..chain.plugins.len()).rev() {
        let plugin = chain.plugin_type(i);
        if let Err(e) = exec(&plugin, "DEL", ifname, &chain.plugin_config(i, None), env).await {
            tracing::warn!(plugin, ifname, error = %e, "delegate DEL failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The fakeipam block for danm's addresses (spec §4.6); `None` when there is no address.
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
/// plugin that has one, else the first) is replaced by it. A `.conf`'s plugin binary is the NetworkType (spec §4.3).
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

    #[test]
    fn fakeipam_block_is_absent_without_real_addresses() {
        assert_eq!(fakeipam_block("", "none"), None);
    }
}
