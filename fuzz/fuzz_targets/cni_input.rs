//! Fuzzes the CNI edge: the environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_ARGS`, ...) and the stdin config,
//! parsed as the `danm` binary parses them ([`danm_core::cni::Invocation::parse`]), then what the flows read from a
//! parsed config (prevResult, GC attachments, IPAM mode, naming scheme, delegate path, the pod of `CNI_ARGS`).
//!
//! Input: `NAME=value` lines (the environment) up to the first NUL byte, then the stdin bytes.
#![no_main]

use danm_core::cni::{CniError, Invocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (env, stdin) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let env = String::from_utf8_lossy(env);
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |k: &str| {
        vars.iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    };
    match Invocation::parse(lookup, stdin) {
        Ok(inv) => {
            let c = &inv.config;
            if let Some(Ok(prev)) = c.prev_result() {
                let _ = prev.result.to_json(inv.version);
            }
            let _ = (
                c.naming_scheme(),
                c.ipam_mode(),
                c.timeout(),
                c.delegate_path(&inv.env.path),
            );
            let _ = inv.args.pod();
            let _ = serde_json::to_string(c);
        }
        // Every failure must be a CNI error object the runtime can read back.
        Err(json) => assert!(
            CniError::from_json(json.as_bytes()).is_some(),
            "not a CNI error: {json}"
        ),
    }
});
