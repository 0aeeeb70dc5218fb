//! Fault injection for tests: fail the next N writes of a resource with a chosen status, or delay its requests.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

/// One injected fault. `resource` is a plural (`danmeps`) or `*` for every resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub resource: String,
    /// How many writes (create, update, patch, delete) fail; 0 = none fail (latency only).
    #[serde(default)]
    pub count: u32,
    /// Writes let through before the failures start (e.g. 1: the create succeeds, the delete that follows fails).
    #[serde(default)]
    pub after: u32,
    /// HTTP code of the failure: 500 (InternalError), 409 (Conflict), 429, 503, ...
    #[serde(default = "default_code")]
    pub code: u16,
    /// Latency added to every request (reads too) of the resource while the fault is installed.
    #[serde(default)]
    pub latency_ms: u64,
}

fn default_code() -> u16 {
    500
}

impl Fault {
    /// Fails the next `count` writes of `resource` with `code`.
    pub fn fail_writes(resource: &str, count: u32, code: u16) -> Self {
        Self {
            resource: resource.into(),
            after: 0,
            count,
            code,
            latency_ms: 0,
        }
    }

    /// Lets the next `writes` writes through before the failures start.
    pub fn after(mut self, writes: u32) -> Self {
        self.after = writes;
        self
    }

    /// Delays every request of `resource` by `latency`.
    pub fn latency(resource: &str, latency: Duration) -> Self {
        Self {
            resource: resource.into(),
            after: 0,
            count: 0,
            code: 500,
            latency_ms: latency.as_millis() as u64,
        }
    }
}

/// The installed faults.
#[derive(Debug, Default)]
pub struct Faults {
    list: Mutex<Vec<Fault>>,
}

/// What a request must suffer.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub latency: Duration,
    pub fail: Option<u16>,
}

impl Faults {
    pub fn add(&self, f: Fault) {
        self.list.lock().unwrap_or_else(PoisonError::into_inner).push(f);
    }

    pub fn clear(&self) {
        self.list.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Consumes one failure for a request to `resource` (if it is a write) and sums the latencies.
    pub fn take(&self, resource: &str, write: bool) -> Verdict {
        let mut l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if l.is_empty() {
            return Verdict::default();
        }
        let mut v = Verdict::default();
        for f in l
            .iter_mut()
            .filter(|f| f.resource == resource || f.resource == "*")
        {
            v.latency += Duration::from_millis(f.latency_ms);
            if write && v.fail.is_none() && f.count > 0 {
                if f.after > 0 {
                    f.after -= 1;
                } else {
                    f.count -= 1;
                    v.fail = Some(f.code);
                }
            }
        }
        l.retain(|f| f.count > 0 || f.latency_ms > 0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_fault_fails_exactly_count_writes_and_spares_reads() {
        let f = Faults::default();
        f.add(Fault::fail_writes("danmeps", 2, 409));
        assert_eq!(f.take("danmeps", false).fail, None);
        assert_eq!(f.take("pods", true).fail, None);
        assert_eq!(f.take("danmeps", true).fail, Some(409));
        assert_eq!(f.take("danmeps", true).fail, Some(409));
        assert_eq!(f.take("danmeps", true).fail, None);
        assert!(f.list().is_empty());
    }

    #[test]
    fn a_fault_with_after_lets_that_many_writes_through_first() {
        let f = Faults::default();
        f.add(Fault::fail_writes("danmeps", 1, 500).after(1));
        assert_eq!(f.take("danmeps", true).fail, None);
        assert_eq!(f.take("danmeps", true).fail, Some(500));
        assert_eq!(f.take("danmeps", true).fail, None);
    }
}
