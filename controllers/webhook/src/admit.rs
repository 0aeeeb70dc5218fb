//! The admission logic behind the three endpoints, shared by the HTTPS server and the offline `review` command:
//! `/netvalidation` ([`network`]), `/confvalidation` ([`tenantconfig`]) and `/netdeletion` ([`deletion`]).

mod deletion;
mod inuse;
mod network;
mod patch;
mod tenantconfig;
mod vni;

use std::fmt;
use std::str::FromStr;
use std::sync::PoisonError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
#[cfg(feature = "server")]
use std::time::Instant;

use danm_core::ipam::blocks::IpamMode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::cluster::Cluster;
#[cfg(feature = "server")]
use crate::metrics::WebhookMetrics;
use crate::review::{AdmissionRequest, Operation, Review, ReviewError, Verdict, encode_response};
use crate::validator::{PluginError, RulesReview, Validator, Violation};

pub use inuse::connected_endpoints;

/// The webhook's paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    NetValidation,
    ConfValidation,
    NetDeletion,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [
        Endpoint::NetValidation,
        Endpoint::ConfValidation,
        Endpoint::NetDeletion,
    ];
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::NetValidation => "/netvalidation",
            Endpoint::ConfValidation => "/confvalidation",
            Endpoint::NetDeletion => "/netdeletion",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = if s.starts_with('/') {
            s.to_owned()
        } else {
            format!("/{s}")
        };
        Endpoint::ALL.into_iter().find(|e| e.path() == p).ok_or_else(|| {
            format!("unknown endpoint {s:?} (expected /netvalidation, /confvalidation or /netdeletion)")
        })
    }
}

/// Bounded retries of conditional TenantConfig writes (behaviour §10 B8): attempts and jittered exponential
/// backoff.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        }
    }
}

/// The webhook: cluster access, plugins, randomness (profile choice, backoff jitter) and metrics.
pub struct Webhook {
    cluster: Arc<dyn Cluster>,
    validator: Arc<dyn Validator>,
    rng: Mutex<StdRng>,
    retry: RetryPolicy,
    #[cfg(feature = "server")]
    metrics: Option<Arc<WebhookMetrics>>,
    /// The IPAM mode of new networks that name none (`bitmap`: DANM's, the default here; the server's flag
    /// defaults to `blocks`).
    ipam_mode: IpamMode,
    /// One queue per TenantConfig for this process's VNI writes (see `admit/vni.rs`).
    tenant_config_writes: vni::WriteQueues,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("validator", &self.validator.describe())
            .finish_non_exhaustive()
    }
}

/// What [`Webhook::handle`] produces for a body.
#[derive(Clone, Debug)]
pub struct Handled {
    /// The response AdmissionReview.
    pub response: Value,
    pub verdict: Verdict,
    pub operation: Operation,
    pub kind: String,
}

impl Webhook {
    pub fn new(cluster: Arc<dyn Cluster>, validator: Arc<dyn Validator>) -> Self {
        Webhook {
            cluster,
            validator,
            rng: Mutex::new(StdRng::from_os_rng()),
            retry: RetryPolicy::default(),
            #[cfg(feature = "server")]
            metrics: None,
            ipam_mode: IpamMode::Bitmap,
            tenant_config_writes: vni::WriteQueues::default(),
        }
    }

    /// The IPAM mode of new networks that name none.
    pub fn with_ipam_mode(mut self, mode: IpamMode) -> Self {
        self.ipam_mode = mode;
        self
    }

    /// Seeds the random choices (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = Mutex::new(StdRng::seed_from_u64(seed));
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    #[cfg(feature = "server")]
    pub fn with_metrics(mut self, metrics: Arc<WebhookMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn validator(&self) -> &Arc<dyn Validator> {
        &self.validator
    }

    /// Decodes a body, judges it and encodes the response. Protocol errors (empty or malformed bodies) are returned
    /// as errors: the server answers them with HTTP 400, the CLI with a non-zero exit.
    pub async fn handle(&self, endpoint: Endpoint, body: &[u8]) -> Result<Handled, ReviewError> {
        #[cfg(feature = "server")]
        let started = Instant::now();
        let review = match Review::decode(body) {
            Ok(r) => r,
            Err(e) => {
                #[cfg(feature = "server")]
                if let Some(m) = &self.metrics {
                    m.observe_request(endpoint.path(), "", "", "error", started.elapsed());
                }
                return Err(e);
            }
        };
        let req = &review.request;
        let verdict = self.judge(endpoint, req).await;
        let kind = req.object_kind();
        #[cfg(feature = "server")]
        if let Some(m) = &self.metrics {
            let outcome = if verdict.allowed { "allowed" } else { "denied" };
            m.observe_request(
                endpoint.path(),
                req.operation().as_str(),
                &kind,
                outcome,
                started.elapsed(),
            );
        }
        if !verdict.allowed {
            tracing::info!(endpoint = %endpoint, uid = %req.uid, kind = %kind, name = %req.name,
                namespace = %req.namespace, operation = %req.operation, reason = %verdict.message.as_deref().unwrap_or(""),
                "denied");
        } else {
            tracing::debug!(endpoint = %endpoint, uid = %req.uid, kind = %kind, name = %req.name, patch_ops = verdict.patch.len(), "allowed");
        }
        let response = encode_response(&review.api_version, &req.uid, &verdict);
        Ok(Handled {
            response,
            verdict,
            operation: req.operation(),
            kind,
        })
    }

    /// The verdict for one request.
    pub async fn judge(&self, endpoint: Endpoint, req: &AdmissionRequest) -> Verdict {
        match endpoint {
            Endpoint::NetValidation => self.network(req).await,
            Endpoint::ConfValidation => self.tenant_config(req).await,
            Endpoint::NetDeletion => self.deletion(req).await,
        }
    }

    /// Runs the rules plugin, timing it.
    fn run_rules(&self, review: &RulesReview) -> Result<Vec<Violation>, PluginError> {
        #[cfg(feature = "server")]
        let t = Instant::now();
        let res = self.validator.rules(review);
        #[cfg(feature = "server")]
        if let Some(m) = &self.metrics {
            m.observe_plugin("rules", t.elapsed());
        }
        res
    }

    /// Runs the backend plugin of `network_type`, timing it.
    fn run_backend(
        &self,
        network_type: &str,
        op: Operation,
        object_json: &str,
        old_json: Option<&str>,
    ) -> Result<Option<Vec<Violation>>, PluginError> {
        #[cfg(feature = "server")]
        let t = Instant::now();
        let res = self.validator.backend(network_type, op, object_json, old_json);
        #[cfg(feature = "server")]
        if let Some(m) = &self.metrics {
            m.observe_plugin(network_type, t.elapsed());
        }
        res
    }

    fn pick(&self, n: usize) -> usize {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..n)
    }

    async fn backoff(&self, attempt: u32) {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry.max_delay);
        let jitter = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0.5..1.0);
        tokio::time::sleep(exp.mul_f64(jitter)).await;
    }
}

/// A denial listing every violation: `[V2] spec.Options.cidr: Invalid CIDR: x; [V20] spec.NetworkID: ...`.
pub(crate) fn deny_violations(violations: &[Violation]) -> Verdict {
    let text = violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Verdict::deny(text)
}

/// Operation for the plugins' WIT enum (`CONNECT`/unknown never reach them).
pub(crate) fn plugin_operation(op: Operation) -> Operation {
    match op {
        Operation::Update => Operation::Update,
        Operation::Delete => Operation::Delete,
        _ => Operation::Create,
    }
}

/// JSON text of an optional raw object (`null` counts as absent).
pub(crate) fn raw_json(v: &Option<Value>) -> Option<String> {
    v.as_ref().filter(|v| !v.is_null()).map(Value::to_string)
}
