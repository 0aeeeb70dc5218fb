//! Runs a CNI network configuration list the way libcni (kubelet/containerd) does: config discovery in a conf dir,
//! `name`/`cniVersion`/`prevResult` injection, the CNI_* environment, ADD in order and DEL in reverse.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// A CNI invocation failure, naming the plugin and the command.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network config (*.conflist, *.conf, *.json) in {dir}")]
    NoConfig { dir: PathBuf },
    #[error("CNI config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("CNI plugin {plugin:?} not found in CNI_PATH {path}")]
    PluginMissing { plugin: String, path: String },
    #[error("CNI {command} of plugin {plugin} failed (code {code}): {msg}{details}")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: i64,
        msg: String,
        details: String,
    },
    #[error("running CNI plugin {plugin}: {source}")]
    Exec { plugin: String, source: std::io::Error },
}

/// A loaded config list.
#[derive(Debug, Clone)]
pub struct ConfList {
    pub path: PathBuf,
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

/// What the runtime tells the plugin about the sandbox.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    pub cni_path: String,
}

/// Loads the first config in lexical order, as containerd and kubelet (dockershim) do.
pub fn load_dir(dir: &Path) -> Result<ConfList, CniError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CniError::Config {
            path: dir.into(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
        })
        .collect();
    files.sort();
    let path = files
        .into_iter()
        .next()
        .ok_or_else(|| CniError::NoConfig { dir: dir.into() })?;
    load_file(&path)
}

/// Loads a `.conflist` or wraps a single-plugin `.conf` into a list.
pub fn load_file(path: &Path) -> Result<ConfList, CniError> {
    let err = |message: String| CniError::Config {
        path: path.into(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no \"name\"".into()))?
        .to_string();
    let cni_version = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0")
        .to_string();
    let plugins = match v.get("plugins").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => p.clone(),
        Some(_) => return Err(err("\"plugins\" is empty".into())),
        None if v.get("type").is_some() => vec![v.clone()],
        None => return Err(err("neither \"plugins\" nor \"type\"".into())),
    };
    Ok(ConfList {
        path: path.into(),
        name,
        cni_version,
        plugins,
    })
}

fn version_at_least(v: &str, want: (u32, u32)) -> bool {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= want
}

fn find_plugin(ty: &str, cni_path: &str) -> Result<PathBuf, CniError> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(ty))
        .find(|p| p.is_file())
        .ok_or_else(|| CniError::PluginMissing {
            plugin: ty.into(),
            path: cni_path.into(),
        })
}

async fn exec(command: &'static str, conf: &Value, rt: &Runtime) -> Result<Value, CniError> {
    let ty = conf
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let bin = find_plugin(&ty, &rt.cni_path)?;
    let args: Vec<String> = std::iter::once("IgnoreUnknown=1".to_string())
        .chain(rt.args.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let mut child = tokio::process::Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &rt.container_id)
        .env("CNI_NETNS", &rt.netns)
        .env("CNI_IFNAME", &rt.ifname)
        .env("CNI_ARGS", args.join(";"))
        .env("CNI_PATH", &rt.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CniError::Exec {
            plugin: ty.clone(),
            source,
        })?;
    let input = serde_json::to_vec(conf).unwrap_or_default();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).await.map_err(|source| CniError::Exec {
            plugin: ty.clone(),
            source,
        })?;
    }
    let out = child.wait_with_output().await.map_err(|source| CniError::Exec {
        plugin: ty.clone(),
        source,
    })?;
    if out.status.success() {
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&out.stdout).map_err(|e| CniError::Plugin {
            plugin: ty,
            command,
            code: 999,
            msg: format!("result is not JSON: {e}"),
            details: String::new(),
        });
    }
    let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!({}));
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let details = err.get("details").and_then(Value::as_str).unwrap_or_default();
    let details = match (details.is_empty(), stderr.is_empty()) {
        (true, true) => String::new(),
        (false, _) => format!("; {details}"),
        (true, false) => format!("; stderr: {stderr}"),
    };
    Err(CniError::Plugin {
        plugin: ty,
        command,
        code: err.get("code").and_then(Value::as_i64).unwrap_or(-1),
        msg: err
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or("plugin failed without an error object")
            .to_string(),
        details,
    })
}

fn build(list: &ConfList, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut c = plugin.clone();
    c["name"] = json!(list.name);
    c["cniVersion"] = json!(list.cni_version);
    if let Some(p) = prev.filter(|p| !p.is_null()) {
        c["prevResult"] = p.clone();
    }
    c
}

/// ADD through the list; each plugin gets the previous one's result as `prevResult`. Returns the last result.
pub async fn add(list: &ConfList, rt: &Runtime) -> Result<Value, CniError> {
    let mut prev: Option<Value> = None;
    for p in &list.plugins {
        let conf = build(list, p, prev.as_ref());
        let res = exec("ADD", &conf, rt).await?;
        prev = Some(res);
    }
    Ok(prev.unwrap_or(Value::Null))
}

/// DEL through the list in reverse; every plugin gets the cached ADD result (CNI ≥ 0.4.0). Keeps going after a
/// failure and returns every error.
pub async fn del(list: &ConfList, rt: &Runtime, cached: Option<&Value>) -> Vec<CniError> {
    let prev = cached.filter(|_| version_at_least(&list.cni_version, (0, 4)));
    let mut errors = Vec::new();
    for p in list.plugins.iter().rev() {
        let conf = build(list, p, prev);
        if let Err(e) = exec("DEL", &conf, rt).await {
            errors.push(e);
        }
    }
    errors
}

/// The addresses (without prefix length) of a CNI result, any version.
pub fn result_ips(result: &Value) -> Vec<String> {
    let mut ips: Vec<String> = result
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("address")?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for k in ["ip4", "ip6"] {
        if let Some(a) = result.pointer(&format!("/{k}/ip")).and_then(Value::as_str) {
            ips.push(a.to_string());
        }
    }
    ips.into_iter()
        .map(|a| a.split('/').next().unwrap_or_default().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_ips_reads_current_and_legacy_results() {
        let r =
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24"}, {"address": "fd00::5/64"}]});
        assert_eq!(result_ips(&r), vec!["10.1.0.5", "fd00::5"]);
        let r = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.2.0.3/16"}});
        assert_eq!(result_ips(&r), vec!["10.2.0.3"]);
    }

    #[test]
    fn a_single_plugin_conf_is_wrapped_into_a_list() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        let l = load_dir(d.path()).unwrap();
        assert_eq!((l.name.as_str(), l.plugins.len()), ("a", 1));
        assert!(version_at_least("1.0.0", (0, 4)) && !version_at_least("0.3.1", (0, 4)));
    }
}
