//! The real-kernel test files' namespaces (the shared test kit's, made per test and removed on drop) and a
//! macro that makes several or skips without root.

#![allow(dead_code)]

use ipnetwork::IpNetwork;

pub use danm_testkit::netns::TestNs;

/// `$n` fresh namespaces named after `$prefix`, or a printed skip (a failure in the kernel lane).
macro_rules! namespaces {
    ($prefix:expr, $n:expr) => {{
        let mut all = Vec::new();
        for _ in 0..$n {
            match $crate::common::TestNs::new($prefix) {
                Ok(ns) => all.push(ns),
                Err(reason) => {
                    danm_testkit::fixtures::skip(&reason);
                    return;
                }
            }
        }
        all
    }};
}

pub fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}
