//! What the host reads out of the JSON plugins exchange with it, with no plugin loaded: the check of a backend's
//! translated CNI config, and the name and NetworkType of a network object (for routing a call and for errors).
//! Pure functions, so the fuzz targets run them without a wasm engine.

use serde::Deserialize;

/// Checks a backend's `translate()` answer: a JSON object with a non-empty string `type`. `Err` says what is wrong.
pub fn check_translation(config: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(config) {
        Ok(v)
            if v.get("type")
                .is_some_and(|t| t.as_str().is_some_and(|t| !t.is_empty())) =>
        {
            Ok(())
        }
        Ok(_) => Err("no \"type\"".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `kind namespace/name` (or `kind name`) of a network object, for error messages; `None` without a name.
pub fn network_name(json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        kind: String,
        #[serde(default)]
        metadata: MetaName,
    }
    #[derive(Deserialize, Default)]
    struct MetaName {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        namespace: Option<String>,
    }
    let d: Doc = serde_json::from_str(json).ok()?;
    let name = d.metadata.name?;
    Some(match d.metadata.namespace {
        Some(ns) => format!("{} {ns}/{name}", d.kind),
        None => format!("{} {name}", d.kind),
    })
}

/// `spec.NetworkType` lower-cased, empty meaning `ipvlan` (DANM's default, behaviour §8.3 / §10 B3).
pub fn network_type_of(json: &str) -> String {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        spec: Option<Spec>,
    }
    #[derive(Deserialize)]
    struct Spec {
        #[serde(rename = "NetworkType", default)]
        network_type: Option<String>,
    }
    let ty = serde_json::from_str::<Doc>(json)
        .ok()
        .and_then(|d| d.spec)
        .and_then(|s| s.network_type);
    danm_api::backend_of(&ty.unwrap_or_default())
}
