//! The object store: every object by resource, namespace and name; the global resourceVersion counter; the bounded
//! event history watches replay from; object lifecycle rules (metadata, generation, status subresource, finalizers,
//! namespace and CRD cascades).

use super::registry::{self, GroupResource, Registry, ResourceDef};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Target};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "ADDED")]
    Added,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "DELETED")]
    Deleted,
}

/// Where the store sends every change besides its history (the persistence log), so the store knows no file.
pub trait EventSink: Send + std::fmt::Debug {
    fn record(&mut self, event: &Event);
}

/// One change, as kept in the history and in the persistence log.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub gr: GroupResource,
    pub namespace: String,
    pub type_: EventType,
    pub object: Value,
    /// The object before a MODIFIED, so selector-filtered watches can turn it into ADDED/DELETED.
    pub old: Option<Value>,
}

type ObjKey = (String, String);

/// All state behind the server's one mutex.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Event>,
    history_cap: usize,
    /// Every event with `rv <= pruned_rv` has left the history: watches from before it get 410 Gone.
    pruned_rv: u64,
    sink: Option<Box<dyn EventSink>>,
    next_ip: u32,
}

pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn target<'a>(def: &'a ResourceDef, name: &'a str) -> Target<'a> {
    Target {
        group: &def.group,
        plural: &def.plural,
        name,
    }
}

const CRD_GR: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

fn is(def: &ResourceDef, gr: (&str, &str)) -> bool {
    def.group == gr.0 && def.plural == gr.1
}

/// Checks `apiVersion`/`kind` of a request body against the resource it is sent to.
pub fn check_body(def: &ResourceDef, version: &str, body: &mut Value) -> Result<(), ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {k:?} was sent to {}",
            def.kind, def.plural
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !def.versions.iter().any(|v| def.api_version(v) == av)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version(version)
        )));
    }
    obj.insert("kind".into(), json!(def.kind));
    obj.insert("apiVersion".into(), json!(def.api_version(&def.versions[0])));
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// The part of an object whose change bumps `metadata.generation`.
fn spec_part(def: &ResourceDef, v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if def.status_subresource {
            m.remove("status");
        }
    }
    c
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        Self {
            rv: 1,
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(16),
            pruned_rv: 0,
            sink: None,
            next_ip: 1,
        }
    }

    /// Loads objects (e.g. replayed from a log) without events: watches from before the load get 410.
    pub fn load(&mut self, gr: GroupResource, obj: Value) {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = name_of(&obj).to_string();
        if let Some(rv) = rv_of(&obj).and_then(|r| r.parse::<u64>().ok()) {
            self.rv = self.rv.max(rv);
        }
        if gr.0 == CRD_GR.0
            && gr.1 == CRD_GR.1
            && let Ok(def) = registry::from_crd(&obj)
        {
            self.registry.insert(def);
        }
        self.objects.entry(gr).or_default().insert((ns, name), obj);
        self.pruned_rv = self.rv;
    }

    pub fn finish_load(&mut self, next_rv: u64) {
        self.rv = self.rv.max(next_rv);
        self.pruned_rv = self.rv;
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn pruned_rv(&self) -> u64 {
        self.pruned_rv
    }

    /// Every event from now on also goes to `sink` (the persistence log).
    pub fn set_sink(&mut self, sink: Box<dyn EventSink>) {
        self.sink = Some(sink);
    }

    /// A snapshot of everything stored, for compaction of the persistence log.
    pub fn snapshot(&self) -> Vec<(GroupResource, Value)> {
        self.objects
            .iter()
            .flat_map(|(gr, m)| m.values().map(move |o| (gr.clone(), o.clone())))
            .collect()
    }

    /// Events after `rv`, in order.
    pub fn events_after(&self, rv: u64) -> impl Iterator<Item = &Event> {
        let start = self.history.partition_point(|e| e.rv <= rv);
        self.history.range(start..)
    }

    fn emit(&mut self, type_: EventType, gr: GroupResource, object: Value, old: Option<Value>) {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ev = Event {
            rv: self.rv,
            gr,
            namespace,
            type_,
            object,
            old,
        };
        if let Some(sink) = &mut self.sink {
            sink.record(&ev);
        }
        self.history.push_back(ev);
        while self.history.len() > self.history_cap {
            if let Some(e) = self.history.pop_front() {
                self.pruned_rv = e.rv;
            }
        }
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn ns_key(def: &ResourceDef, ns: &str) -> String {
        if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        }
    }

    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<&Value, ApiError> {
        self.objects
            .get(&def.gr())
            .and_then(|m| m.get(&(Self::ns_key(def, ns), name.to_string())))
            .ok_or_else(|| ApiError::not_found(target(def, name)))
    }

    /// Objects of a resource in a namespace (or all), filtered by selectors.
    pub fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        let Some(m) = self.objects.get(&def.gr()) else {
            return Vec::new();
        };
        let it: Box<dyn Iterator<Item = (&ObjKey, &Value)>> = match ns {
            Some(ns) if def.namespaced => Box::new(
                m.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
            _ => Box::new(m.iter()),
        };
        it.map(|(_, v)| v)
            .filter(|v| labels.matches(v) && fields.matches(v))
            .cloned()
            .collect()
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".to_string()))
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    /// Validates a create and fills in server-owned metadata (all but resourceVersion).
    pub fn prepare_create(&self, def: &ResourceDef, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("check_body ensures metadata");
        if def.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => format!("{g}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &def.kind,
                        &def.group,
                        "",
                        "metadata.name",
                        "FieldValueRequired",
                        "name or generateName is required",
                    ));
                }
            }
        } else {
            name
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                &name,
                "metadata.name",
                "FieldValueInvalid",
                &format!(
                    "\"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("managedFields");
        if def.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::not_found(Target {
                group: "",
                plural: "namespaces",
                name: ns,
            }));
        }
        if self.get(def, ns, &name).is_ok() {
            return Err(ApiError::already_exists(target(def, &name)));
        }
        self.defaults_on_create(def, &mut obj)?;
        Ok(obj)
    }

    fn defaults_on_create(&self, def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
        match (def.group.as_str(), def.plural.as_str()) {
            ("", "namespaces") => {
                let name = name_of(obj).to_string();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
                obj["status"] = json!({ "phase": "Active" });
            }
            ("", "pods") if obj.pointer("/status/phase").is_none() => {
                obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
            }
            ("", "services") => {
                let ty = obj
                    .pointer("/spec/type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                obj["spec"]["type"] = json!(ty);
                let cur = obj
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if cur.is_empty() && ty != "ExternalName" {
                    let n = self.next_ip;
                    let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                } else if !cur.is_empty() {
                    let ip = cur.to_string();
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
            }
            _ if is(def, CRD_GR) => {
                let crd = registry::from_crd(obj).map_err(|e| {
                    ApiError::invalid(
                        &def.kind,
                        &def.group,
                        name_of(obj),
                        e.field(),
                        "FieldValueInvalid",
                        &e.to_string(),
                    )
                })?;
                obj["status"] = crd_status(obj, &crd);
            }
            _ => {}
        }
        Ok(())
    }

    /// Stores a prepared create, assigning the resourceVersion.
    pub fn commit_create(&mut self, def: &ResourceDef, obj: Value, dry_run: bool) -> Result<Value, ApiError> {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = name_of(&obj).to_string();
        if self.get(def, &ns, &name).is_ok() {
            return Err(ApiError::already_exists(target(def, &name)));
        }
        if def.namespaced && !self.namespace_exists(&ns) {
            return Err(ApiError::not_found(Target {
                group: "",
                plural: "namespaces",
                name: &ns,
            }));
        }
        if dry_run {
            return Ok(obj);
        }
        let mut obj = obj;
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if def.group.is_empty() && def.plural == "services" {
            self.next_ip += 1;
        }
        if is(def, CRD_GR)
            && let Ok(crd) = registry::from_crd(&obj)
        {
            self.registry.insert(crd);
        }
        self.objects
            .entry(def.gr())
            .or_default()
            .insert((ns, name), obj.clone());
        self.emit(EventType::Added, def.gr(), obj.clone(), None);
        Ok(obj)
    }

    /// Builds the object an update (PUT of the object or of `/status`) would store. Returns the new object and the
    /// resourceVersion it is based on. A stale resourceVersion in the body is a 409.
    pub fn prepare_update(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mut body: Value,
        status_only: bool,
    ) -> Result<(Value, Value), ApiError> {
        let cur = self.get(def, ns, name)?.clone();
        let body_name = name_of(&body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(n) = body.pointer("/metadata/namespace").and_then(Value::as_str)
            && !n.is_empty()
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(rv) = rv_of(&body)
            && Some(rv) != rv_of(&cur)
        {
            return Err(ApiError::conflict(target(def, name)));
        }
        let mut new = if status_only {
            let mut n = cur.clone();
            n["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            if n["status"].is_null() {
                n.as_object_mut().unwrap().remove("status");
            }
            n
        } else {
            if def.status_subresource {
                match cur.get("status") {
                    Some(s) => body["status"] = s.clone(),
                    None => {
                        body.as_object_mut().unwrap().remove("status");
                    }
                }
            }
            body
        };
        // Server-owned metadata is kept from the stored object.
        let meta = new["metadata"].as_object_mut().expect("object has metadata");
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match cur["metadata"].get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.insert("name".into(), json!(name));
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert(
            "resourceVersion".into(),
            cur["metadata"]["resourceVersion"].clone(),
        );
        meta.remove("managedFields");
        if is(def, CRD_GR) && !status_only {
            registry::from_crd(&new).map_err(|e| {
                ApiError::invalid(
                    &def.kind,
                    &def.group,
                    name,
                    e.field(),
                    "FieldValueInvalid",
                    &e.to_string(),
                )
            })?;
        }
        Ok((cur, new))
    }

    /// Stores an update prepared from the object at resourceVersion `base_rv`; 409 if it changed since.
    pub fn commit_update(
        &mut self,
        def: &ResourceDef,
        mut new: Value,
        base_rv: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let ns = new
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = name_of(&new).to_string();
        let cur = self.get(def, &ns, &name)?.clone();
        if rv_of(&cur) != Some(base_rv) {
            return Err(ApiError::conflict(target(def, &name)));
        }
        new["metadata"]["resourceVersion"] = json!(base_rv);
        if spec_part(def, &cur) != spec_part(def, &new) {
            let g = cur
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if is(def, CRD_GR)
            && let Ok(crd) = registry::from_crd(&new)
        {
            new["status"] = crd_status(&new, &crd);
        }
        if new == cur || dry_run {
            return Ok(new);
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        let rv = self.bump();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        if finalized {
            self.remove(def, &ns, &name, new.clone());
            return Ok(new);
        }
        if is(def, CRD_GR)
            && let Ok(crd) = registry::from_crd(&new)
        {
            self.registry.insert(crd);
        }
        self.objects
            .entry(def.gr())
            .or_default()
            .insert((ns, name), new.clone());
        self.emit(EventType::Modified, def.gr(), new.clone(), Some(cur));
        Ok(new)
    }

    /// Deletes an object, or marks it for deletion if it has finalizers. `preconditions` is the DeleteOptions
    /// member of that name.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        preconditions: Option<&Value>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let cur = self.get(def, ns, name)?.clone();
        if let Some(p) = preconditions {
            if let Some(rv) = p.get("resourceVersion").and_then(Value::as_str)
                && Some(rv) != rv_of(&cur)
            {
                return Err(ApiError::conflict_msg(
                    target(def, name),
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        rv_of(&cur).unwrap_or_default()
                    ),
                ));
            }
            if let Some(uid) = p.get("uid").and_then(Value::as_str)
                && Some(uid) != cur.pointer("/metadata/uid").and_then(Value::as_str)
            {
                return Err(ApiError::conflict_msg(
                    target(def, name),
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: "),
                ));
            }
        }
        if dry_run {
            return Ok(cur);
        }
        let has_finalizers = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(cur);
            }
            let mut new = cur.clone();
            let rv = self.bump();
            new["metadata"]["deletionTimestamp"] = json!(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            new["metadata"]["resourceVersion"] = json!(rv.to_string());
            self.objects
                .entry(def.gr())
                .or_default()
                .insert((Self::ns_key(def, ns), name.to_string()), new.clone());
            self.emit(EventType::Modified, def.gr(), new.clone(), Some(cur));
            return Ok(new);
        }
        let rv = self.bump();
        let mut gone = cur;
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.remove(def, ns, name, gone.clone());
        Ok(gone)
    }

    /// Removes an object for good (its DELETED event carries `gone`), cascading for namespaces and CRDs.
    fn remove(&mut self, def: &ResourceDef, ns: &str, name: &str, gone: Value) {
        if let Some(m) = self.objects.get_mut(&def.gr()) {
            m.remove(&(Self::ns_key(def, ns), name.to_string()));
        }
        self.emit(EventType::Deleted, def.gr(), gone.clone(), None);
        if def.group.is_empty() && def.plural == "namespaces" {
            let namespaced: Vec<GroupResource> = self
                .registry
                .all()
                .filter(|d| d.namespaced)
                .map(ResourceDef::gr)
                .collect();
            for gr in namespaced {
                let keys: Vec<ObjKey> = self
                    .objects
                    .get(&gr)
                    .map(|m| m.keys().filter(|(n, _)| n == name).cloned().collect())
                    .unwrap_or_default();
                for k in keys {
                    self.drop_object(&gr, &k);
                }
            }
        }
        if is(def, CRD_GR) {
            let group = gone
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = gone
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let gr = (group.to_string(), plural.to_string());
            let keys: Vec<ObjKey> = self
                .objects
                .get(&gr)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                self.drop_object(&gr, &k);
            }
            self.registry.remove(&gr);
        }
    }

    fn drop_object(&mut self, gr: &GroupResource, key: &ObjKey) {
        if let Some(obj) = self.objects.get_mut(gr).and_then(|m| m.remove(key)) {
            let rv = self.bump();
            let mut gone = obj;
            gone["metadata"]["resourceVersion"] = json!(rv.to_string());
            self.emit(EventType::Deleted, gr.clone(), gone, None);
        }
    }
}

fn crd_status(obj: &Value, crd: &ResourceDef) -> Value {
    let t = obj
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(json!(now()));
    json!({
        "acceptedNames": obj.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": t, "reason": "NoConflicts",
             "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": t, "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"}
        ],
        "storedVersions": [crd.versions[0]],
    })
}

/// RFC 1123 subdomain (what most kinds require of `metadata.name`).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b':')
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.as_bytes()[n.len() - 1].is_ascii_alphanumeric()
}
