//! The CNI's IPAM: [`danm_ipam`] for this node, configured from the CNI config (`ipamMode`, block sizes, idle time).

use std::time::Duration;

pub use danm_ipam::{BatchError, Ipam, IpamApiError, IpamConfig, Release, Request, Reserved, Retry, is_real};

use crate::context::Ctx;

impl Ctx {
    /// The cluster-wide IPAM settings of this invocation.
    pub fn ipam_config(&self) -> IpamConfig {
        let defaults = IpamConfig::default();
        let config = &self.config;
        IpamConfig {
            // Validated when the config was parsed.
            default_mode: config.ipam_mode().unwrap_or(defaults.default_mode),
            retry: self.retry,
            block_prefix_v4: config.ipam_block_prefix.unwrap_or(defaults.block_prefix_v4),
            block_prefix_v6: config.ipam_block_prefix6.unwrap_or(defaults.block_prefix_v6),
            idle: config
                .ipam_idle_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.idle),
        }
    }

    /// IPAM for this node over the invocation's API client.
    pub fn ipam(&self) -> Ipam<'_> {
        Ipam::new(self.api.as_ref(), &self.hostname, self.ipam_config())
    }
}
