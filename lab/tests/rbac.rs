//! Least privilege of danm's ServiceAccounts: the verbs each one holds in `deploy/` (its Roles and ClusterRoles
//! through their bindings) against the API calls its component made, as the lab API server recorded them.
//!
//! The calls are observed, not guessed: with `DANM_LAB_AUDIT=<file>` every lab server appends one line per request
//! (the client's User-Agent, verb, group, resource). danm's binaries name themselves in their User-Agent (`danm/…`,
//! `danm-webhook/…`, `netwatcher/…`, `svcwatcher/…`), and tests that run a component's code in-process give it a
//! client named the same way (`LabHandle::client_as("svcwatcher/test")`), so `make unit` leaves a record of what
//! each uses, including paths only tests reach (a 409 re-read, bitmap writes on every network kind). `make rbac`
//! (part of `make test`) then runs this check: `DANM_RBAC_AUDIT=<file> cargo test -p danm-lab --test rbac -- --ignored`.
//!
//! Granularity: (API group, resource, verb). Namespaces and `resourceNames` of a Role are not compared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

type Grant = (String, String, String);

/// The ServiceAccount each binary runs as (deploy/).
const IDENTITIES: &[(&str, &str)] = &[
    ("danm", "danm-cni"),
    ("danm-webhook", "danm-webhook"),
    ("netwatcher", "netwatcher"),
    ("svcwatcher", "svcwatcher"),
];

fn deploy_dir() -> PathBuf {
    danm_testkit::fixtures::workspace_dir().join("deploy")
}

fn yaml_docs(dir: &Path, out: &mut Vec<Value>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_docs(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
                if !v.is_null() {
                    out.push(v);
                }
            }
        }
    }
}

/// ServiceAccount name → the (group, resource, verb) its bindings grant.
fn granted(docs: &[Value]) -> BTreeMap<String, BTreeSet<Grant>> {
    let role_key = |kind: &str, name: &str, ns: &str| format!("{kind}/{ns}/{name}");
    let mut roles: BTreeMap<String, &Value> = BTreeMap::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind == "Role" || kind == "ClusterRole" {
            let ns = if kind == "Role" {
                d["metadata"]["namespace"].as_str().unwrap_or_default()
            } else {
                ""
            };
            roles.insert(
                role_key(kind, d["metadata"]["name"].as_str().unwrap_or_default(), ns),
                &d["rules"],
            );
        }
    }
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind != "RoleBinding" && kind != "ClusterRoleBinding" {
            continue;
        }
        let role_kind = d["roleRef"]["kind"].as_str().unwrap_or_default();
        let ns = if role_kind == "Role" {
            d["metadata"]["namespace"].as_str().unwrap_or_default()
        } else {
            ""
        };
        let key = role_key(role_kind, d["roleRef"]["name"].as_str().unwrap_or_default(), ns);
        let rules = roles
            .get(&key)
            .unwrap_or_else(|| panic!("binding {} names a missing {key}", d["metadata"]["name"]));
        for subject in d["subjects"].as_array().into_iter().flatten() {
            if subject["kind"] != "ServiceAccount" {
                continue;
            }
            let grants = out
                .entry(subject["name"].as_str().unwrap_or_default().to_owned())
                .or_default();
            for rule in rules.as_array().into_iter().flatten() {
                for g in strs(&rule["apiGroups"]) {
                    for r in strs(&rule["resources"]) {
                        for v in strs(&rule["verbs"]) {
                            grants.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// ServiceAccount name → the (group, resource, verb) its binary used, from the audit lines.
fn used(audit: &str) -> BTreeMap<String, BTreeSet<Grant>> {
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for line in audit.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line {line:?}: {e}"));
        let binary = v["agent"]
            .as_str()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        let Some((_, sa)) = IDENTITIES.iter().find(|(b, _)| *b == binary) else {
            continue; // the tests' own clients, kubectl
        };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        out.entry((*sa).to_owned())
            .or_default()
            .insert((s("group"), s("resource"), s("verb")));
    }
    out
}

fn show(set: &BTreeSet<Grant>) -> String {
    set.iter()
        .map(|(g, r, v)| {
            format!(
                "  {v} {}{r}",
                if g.is_empty() {
                    String::new()
                } else {
                    format!("{g}/")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn deploy_grants_name_every_danm_service_account() {
    let mut docs = Vec::new();
    yaml_docs(&deploy_dir(), &mut docs);
    let grants = granted(&docs);
    for (_, sa) in IDENTITIES {
        assert!(
            grants.get(*sa).is_some_and(|g| !g.is_empty()),
            "deploy/ grants ServiceAccount {sa} nothing"
        );
    }
}

#[test]
#[ignore = "needs the audit of a test run: `make rbac` (DANM_RBAC_AUDIT=<file>)"]
fn each_service_account_holds_exactly_the_verbs_its_component_uses() {
    let Some(path) = std::env::var_os("DANM_RBAC_AUDIT") else {
        panic!(
            "DANM_RBAC_AUDIT is not set: run `make rbac`, which records an audit and then runs this check"
        );
    };
    let audit = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", Path::new(&path).display()));
    let mut docs = Vec::new();
    yaml_docs(&deploy_dir(), &mut docs);
    let grants = granted(&docs);
    let used = used(&audit);
    let mut problems = Vec::new();
    for (binary, sa) in IDENTITIES {
        let g = grants.get(*sa).cloned().unwrap_or_default();
        let Some(u) = used.get(*sa) else {
            problems.push(format!(
                "{binary} ({sa}) made no API call in the audited run: nothing observed"
            ));
            continue;
        };
        println!("{binary} ({sa}) used:\n{}", show(u));
        let missing: BTreeSet<Grant> = u.difference(&g).cloned().collect();
        let unused: BTreeSet<Grant> = g.difference(u).cloned().collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{binary} ({sa}) uses what deploy/ does not grant:\n{}",
                show(&missing)
            ));
        }
        if !unused.is_empty() {
            problems.push(format!(
                "{binary} ({sa}) holds what it never used:\n{}",
                show(&unused)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "least privilege violated:\n{}",
        problems.join("\n")
    );
}
