//! Fuzzes the pod annotation parser (`danm.k8s.io/interfaces`): the JSON list of interface requests, their address
//! requests and policy routes, as ADD reads them from a pod.
#![no_main]

use std::collections::BTreeMap;

use danm_core::annotation::{parse_interfaces, parse_ip_request, parse_pod_annotations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(requests) = parse_interfaces("danm.k8s.io/interfaces", text) {
        for r in &requests {
            let _ = (r.policy_routes(false), r.policy_routes(true));
        }
    }
    let _ = (parse_ip_request(text, false), parse_ip_request(text, true));
    let mut annotations = BTreeMap::new();
    annotations.insert("example.com/DANM.k8s.io/Interfaces".to_owned(), text.to_owned());
    let _ = parse_pod_annotations(&annotations);
});
