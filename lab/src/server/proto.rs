//! Decodes the protobuf bodies kubectl's typed clients send for a few core kinds (`kubectl create namespace`,
//! `create configmap`, `create secret`, `create serviceaccount`) into JSON; other protobuf bodies stay unsupported.

use base64::Engine;
use serde_json::{Map, Value, json};

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, ty) = (key >> 3, key & 7);
        match ty {
            0 => out.push((num, Wire::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                out.push((num, Wire::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn string(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Option<(String, Value)> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, Wire::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Wire::Bytes(x)) => v = string(x),
            _ => {}
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => drop(m.insert("name".into(), string(x))),
            (2, Wire::Bytes(x)) => drop(m.insert("generateName".into(), string(x))),
            (3, Wire::Bytes(x)) => drop(m.insert("namespace".into(), string(x))),
            (11, Wire::Bytes(x)) => drop(map_entry(x, false).map(|(k, v)| labels.insert(k, v))),
            (12, Wire::Bytes(x)) => drop(map_entry(x, false).map(|(k, v)| annotations.insert(k, v))),
            (14, Wire::Bytes(x)) => finalizers.push(string(x)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// Decodes a `k8s\0`-enveloped protobuf body; `None` if it is not one of the supported kinds.
pub fn decode(body: &[u8]) -> Option<Value> {
    let inner = body.strip_prefix(b"k8s\0")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, w) in fields(inner)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (tn, tw) in fields(tm)? {
                    match (tn, tw) {
                        (1, Wire::Bytes(x)) => api_version = String::from_utf8_lossy(x).into_owned(),
                        (2, Wire::Bytes(x)) => kind = String::from_utf8_lossy(x).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = Some(x),
            _ => {}
        }
    }
    let raw = raw?;
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
    let (mut data, mut bin, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, w) in fields(raw)? {
        match (kind.as_str(), n, w) {
            (_, 1, Wire::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            ("Namespace" | "ServiceAccount", _, _) => {}
            ("ConfigMap", 2, Wire::Bytes(x)) => drop(map_entry(x, false).map(|(k, v)| data.insert(k, v))),
            ("ConfigMap", 3, Wire::Bytes(x)) => drop(map_entry(x, true).map(|(k, v)| bin.insert(k, v))),
            ("ConfigMap", 4, Wire::Varint(v)) => obj["immutable"] = json!(v != 0),
            ("Secret", 2, Wire::Bytes(x)) => drop(map_entry(x, true).map(|(k, v)| data.insert(k, v))),
            ("Secret", 3, Wire::Bytes(x)) => obj["type"] = string(x),
            ("Secret", 4, Wire::Bytes(x)) => drop(map_entry(x, false).map(|(k, v)| string_data.insert(k, v))),
            ("Secret", 5, Wire::Varint(v)) => obj["immutable"] = json!(v != 0),
            ("ConfigMap" | "Secret", _, _) => {}
            _ => return None,
        }
    }
    if !matches!(
        kind.as_str(),
        "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
    ) {
        return None;
    }
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !bin.is_empty() {
        obj["binaryData"] = Value::Object(bin);
    }
    if !string_data.is_empty() {
        // The apiserver folds stringData into data.
        let d = obj["data"].as_object().cloned().unwrap_or_default();
        let mut d = d;
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or_default();
            d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
        }
        obj["data"] = Value::Object(d);
    }
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![((n << 3) | 2) as u8, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn a_protobuf_configmap_decodes_to_json() {
        let meta = [
            field(1, b"c"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let cm = [
            field(1, &meta),
            field(2, &[field(1, b"a"), field(2, b"1")].concat()),
        ]
        .concat();
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &tm), field(2, &cm)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app": "web"}}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn an_unsupported_kind_is_not_decoded() {
        let tm = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [
            b"k8s\0".to_vec(),
            field(1, &tm),
            field(2, &field(1, &field(1, b"p"))),
        ]
        .concat();
        assert!(decode(&body).is_none());
    }
}
