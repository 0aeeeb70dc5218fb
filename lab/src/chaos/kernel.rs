//! The kernel state the chaos run creates and audits, read and changed through `ip`: pod network namespaces, the
//! veth parents of the networks, the links and addresses inside a namespace and danm's links in the host namespace.

use serde_json::Value;
use std::collections::BTreeMap;

/// The link group danm gives the plain macvlan/ipvlan links it creates ("danm" in ASCII).
pub const DANM_LINK_GROUP: u32 = 0x6461_6e6d;

/// Runs `ip` with `args`; the error names the command and carries its stderr.
pub async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the named network namespace `name` (as `ip netns add` does) with `lo` up.
pub async fn netns_add(name: &str) -> Result<(), String> {
    ip(&["netns", "add", name]).await?;
    ip(&["-n", name, "link", "set", "lo", "up"]).await.map(drop)
}

/// Deletes the named network namespace; one that is already gone is not an error.
pub async fn netns_del(name: &str) -> Result<(), String> {
    if !std::path::Path::new("/var/run/netns").join(name).exists() {
        return Ok(());
    }
    ip(&["netns", "del", name]).await.map(drop)
}

/// The named network namespaces whose name starts with `prefix`.
pub async fn netns_with_prefix(prefix: &str) -> Result<Vec<String>, String> {
    let dir = std::path::Path::new("/var/run/netns");
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    Ok(names)
}

/// A veth pair in the host namespace whose first end (up) is a network's macvlan parent; deleted on drop.
#[derive(Debug)]
pub struct Parent(pub String);

impl Parent {
    pub async fn create(name: &str) -> Result<Parent, String> {
        let _ = ip(&["link", "del", name]).await;
        let peer = format!("{name}p");
        ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]).await?;
        ip(&["link", "set", name, "up"]).await?;
        Ok(Parent(name.to_owned()))
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

/// One link as `ip -j -d link` shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    /// The parent link (`link`), for macvlans.
    pub parent: Option<String>,
    /// The link group as a number (`default` is 0).
    pub group: u32,
    /// `linkinfo.info_kind` (`macvlan`, `veth`, ...).
    pub kind: Option<String>,
}

fn links_of(json: &str) -> Vec<Link> {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?.to_owned();
            let group = match &l["group"] {
                Value::String(s) if s == "default" => 0,
                Value::String(s) => s.parse().unwrap_or(u32::MAX),
                Value::Number(n) => n.as_u64().unwrap_or(u64::from(u32::MAX)) as u32,
                _ => 0,
            };
            Some(Link {
                name,
                parent: l["link"].as_str().map(str::to_owned),
                group,
                kind: l["linkinfo"]["info_kind"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

/// The links of the host namespace.
pub async fn host_links() -> Result<Vec<Link>, String> {
    Ok(links_of(&ip(&["-j", "-d", "link", "show"]).await?))
}

/// The links of a named namespace other than `lo`, each with its global addresses (without prefix length).
pub async fn netns_interfaces(netns: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let out = ip(&["-n", netns, "-j", "addr", "show"]).await?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("ip -n {netns} -j addr: {e}"))?;
    let mut links = BTreeMap::new();
    for l in v.as_array().into_iter().flatten() {
        let Some(name) = l["ifname"].as_str() else {
            continue;
        };
        if name == "lo" {
            continue;
        }
        let addrs = l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"].as_str() == Some("global"))
            .filter_map(|a| a["local"].as_str().map(str::to_owned))
            .collect();
        links.insert(name.to_owned(), addrs);
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_groups_and_parents_are_read_from_ip_json() {
        let json = r#"[{"ifname":"lo","group":"default"},
            {"ifname":"m1","link":"dca1","group":"1684106861","linkinfo":{"info_kind":"macvlan"}},
            {"ifname":"m2","link":"dcb1","group":7}]"#;
        let l = links_of(json);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].group, 0);
        assert_eq!(
            (l[1].group, l[1].parent.as_deref()),
            (DANM_LINK_GROUP, Some("dca1"))
        );
        assert_eq!(l[1].kind.as_deref(), Some("macvlan"));
        assert_eq!(l[2].group, 7);
    }
}
