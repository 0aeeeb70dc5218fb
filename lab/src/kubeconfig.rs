//! Kubeconfig files for lab clients (kubectl, kube-rs, the CNI's `kubeconfig` key).

use base64::Engine;
use std::path::Path;

/// Renders a kubeconfig with one cluster/user/context named `danm-lab`.
pub fn render(server: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let cluster = match ca_pem {
        Some(ca) => format!(
            "    certificate-authority-data: {}\n    server: {server}\n",
            b64(ca)
        ),
        None => format!("    server: {server}\n"),
    };
    let user = match token {
        Some(t) => format!("  user:\n    token: {t}\n"),
        None => "  user: {}\n".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: danm-lab\n  cluster:\n{cluster}contexts:\n- name: danm-lab\n  context:\n    cluster: danm-lab\n    user: danm-lab\n    namespace: default\ncurrent-context: danm-lab\nusers:\n- name: danm-lab\n{user}preferences: {{}}\n"
    )
}

/// Writes the kubeconfig to `path` (creating parent directories), readable by its owner only (it may hold a
/// token), and atomically: a client reading it while a restarted server rewrites it sees the old or the new file,
/// never a truncated one.
pub fn write(path: &Path, server: &str, ca_pem: Option<&str>, token: Option<&str>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(render(server, ca_pem, token).as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_kubeconfig_is_yaml_with_the_server_and_token() {
        let y: serde_yaml::Value =
            serde_yaml::from_str(&render("https://127.0.0.1:1", Some("CA"), Some("t0k"))).unwrap();
        assert_eq!(
            y["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:1")
        );
        assert_eq!(y["users"][0]["user"]["token"].as_str(), Some("t0k"));
        assert_eq!(y["current-context"].as_str(), Some("danm-lab"));
    }
}
