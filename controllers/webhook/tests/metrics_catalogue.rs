//! The metrics catalogue: what each controller's `/metrics` really exposes (its registry, built as its binary builds
//! it) is exactly the table of docs/operating.md, the Grafana dashboard queries only documented metrics, and every
//! component serving metrics is annotated for scraping in deploy/.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use danm_core::ipam::Family;
use danm_core::ipam::blocks::IpamMode;
use danm_ipam::reconcile::{PoolUse, ScanReport};
use danm_webhook::metrics::WebhookMetrics;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The metric families of one rendered registry from its `# TYPE` lines, named as queried: OpenMetrics names a
/// counter without its `_total`, which every sample of it carries.
fn exposed(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name type");
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            (name, kind.to_owned())
        })
        .collect()
}

/// What every component exposes, each registry built by the function its `main` calls. A labelled family renders
/// nothing until it holds a series, so the families are given one each the way the components do: a webhook request
/// and plugin call, a reconciler scan seeing one pool.
fn exposed_by_all() -> BTreeMap<String, String> {
    let (webhook, wm) = WebhookMetrics::registry();
    wm.observe_request(
        "/netvalidation",
        "CREATE",
        "DanmNet",
        "allowed",
        Duration::from_millis(3),
    );
    wm.observe_plugin("macvlan", Duration::from_millis(1));
    let (netwatcher, _n) = danm_netwatcher::metrics::registry();
    let (svcwatcher, _s, ipam) = danm_svcwatcher::metrics_registry();
    ipam.record(&ScanReport {
        pools: vec![PoolUse {
            network: "DanmNet demo/internal".into(),
            family: Family::V4,
            mode: IpamMode::Blocks,
            size: 254,
            used: 2,
        }],
        ..ScanReport::default()
    });
    let mut all = BTreeMap::new();
    for (component, registry) in [
        ("danm_webhook_", webhook),
        ("danm_netwatcher_", netwatcher),
        ("danm_svcwatcher_", svcwatcher),
    ] {
        let families = exposed(&registry.render());
        assert!(!families.is_empty(), "{component}: no # TYPE line rendered");
        for (name, kind) in families {
            assert!(name.starts_with(component), "{name} lacks the prefix {component}");
            all.insert(name, kind);
        }
    }
    all
}

/// One row of the metrics table.
#[derive(Debug)]
struct Documented {
    kind: String,
    example: String,
}

/// The table of the `## Metrics` section of docs/operating.md: rows whose first cell is a backquoted metric name.
fn documented() -> BTreeMap<String, Documented> {
    let doc = read("docs/operating.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Metrics\n"))
        .expect("docs/operating.md has a ## Metrics section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `danm_")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(
            cells.len(),
            5,
            "metric | type | labels | answers | example query: {line}"
        );
        let name = cells[0].trim_matches('`').to_owned();
        let example = cells[4].trim_matches('`').to_owned();
        let row = Documented {
            kind: cells[1].to_owned(),
            example,
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} is documented twice"
        );
    }
    rows
}

/// The metric names a PromQL expression uses, a histogram's `_bucket`/`_sum`/`_count` series named by the
/// histogram when `histograms` holds it.
fn metric_names(expr: &str, histograms: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("danm_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(b)))
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

fn histograms(doc: &BTreeMap<String, Documented>) -> BTreeSet<&str> {
    doc.iter()
        .filter(|(_, d)| d.kind == "histogram")
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn the_documented_metrics_are_exactly_those_the_components_expose() {
    let exposed = exposed_by_all();
    let doc = documented();
    let documented: BTreeMap<&str, &str> = doc.iter().map(|(n, d)| (n.as_str(), d.kind.as_str())).collect();
    let exposed: BTreeMap<&str, &str> = exposed.iter().map(|(n, k)| (n.as_str(), k.as_str())).collect();
    let undocumented: Vec<_> = exposed
        .iter()
        .filter(|(n, _)| !documented.contains_key(*n))
        .collect();
    let phantom: Vec<_> = documented
        .iter()
        .filter(|(n, _)| !exposed.contains_key(*n))
        .collect();
    assert!(
        undocumented.is_empty() && phantom.is_empty(),
        "exposed but not in docs/operating.md: {undocumented:?}; documented but not exposed: {phantom:?}"
    );
    assert_eq!(
        documented, exposed,
        "the type column of docs/operating.md differs"
    );
}

#[test]
fn every_documented_example_query_uses_its_own_metric_and_only_documented_ones() {
    let doc = documented();
    let hist = histograms(&doc);
    for (name, row) in &doc {
        let used = metric_names(&row.example, &hist);
        assert!(
            used.contains(name),
            "the example query of {name} does not use it: {}",
            row.example
        );
        for other in &used {
            assert!(
                doc.contains_key(other),
                "the example query of {name} uses undocumented {other}"
            );
        }
    }
}

#[test]
fn the_grafana_dashboard_queries_only_documented_metrics() {
    let doc = documented();
    let hist = histograms(&doc);
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json"))
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has {} queries", exprs.len());
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr, &hist);
        assert!(!names.is_empty(), "a dashboard query uses no danm metric: {expr}");
        for name in names {
            assert!(
                doc.contains_key(&name),
                "the dashboard uses undocumented {name} in {expr}"
            );
            used.insert(name);
        }
    }
    // The questions of the dashboard: pools, allocations, webhook latency and verdicts, link operations.
    for needed in [
        "danm_svcwatcher_ipam_pool_used_addresses",
        "danm_svcwatcher_ipam_pool_size_addresses",
        "danm_svcwatcher_ipam_pool_allocated_addresses_total",
        "danm_svcwatcher_ipam_pool_released_addresses_total",
        "danm_webhook_request_duration_seconds",
        "danm_webhook_requests_total",
        "danm_netwatcher_links_created_total",
        "danm_netwatcher_links_deleted_total",
    ] {
        assert!(used.contains(needed), "the dashboard has no panel over {needed}");
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_component_serving_metrics_is_annotated_for_scraping_on_a_port_it_listens_on() {
    for manifest in [
        "deploy/netwatcher/daemonset.yaml",
        "deploy/svcwatcher/deployment.yaml",
        "deploy/webhook/deployment.yaml",
    ] {
        let text = read(manifest);
        let workload = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
            .find(|o: &serde_yaml::Value| matches!(o["kind"].as_str(), Some("DaemonSet" | "Deployment")))
            .unwrap_or_else(|| panic!("{manifest}: no DaemonSet or Deployment"));
        let pod = &workload["spec"]["template"];
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{manifest}"
        );
        let port: u64 = annotations["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{manifest}: no numeric prometheus.io/port annotation"));
        let ports: Vec<u64> = pod["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_sequence().into_iter().flatten())
            .filter_map(|p| p["containerPort"].as_u64())
            .collect();
        assert!(
            ports.contains(&port),
            "{manifest}: prometheus.io/port {port} is none of its ports {ports:?}"
        );
        if let Some(path) = annotations["prometheus.io/path"].as_str() {
            assert_eq!(path, "/metrics", "{manifest}: the controllers serve /metrics");
        }
    }
}
