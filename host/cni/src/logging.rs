//! Logging: tracing to stderr and, if the config names one, to a log file. Never to stdout (it carries the result).

use std::fs::OpenOptions;
use std::sync::Mutex;

use danm_core::cni::CniConfig;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the subscriber (once per process); the returned value keeps nothing alive but marks the call site.
pub fn init(config: &CniConfig) -> Option<()> {
    let level = config.log_level.clone().unwrap_or_else(|| "info".to_owned());
    let filter = || EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter_boxed(filter());
    let file = config.log_file.as_ref().and_then(|path| {
        let f = OpenOptions::new().create(true).append(true).open(path).ok()?;
        Some(
            fmt::layer()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .with_filter_boxed(filter()),
        )
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .ok()
}

trait BoxedFilter<S> {
    fn with_filter_boxed(self, filter: EnvFilter) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>;
}

impl<S, L> BoxedFilter<S> for L
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: tracing_subscriber::Layer<S> + Send + Sync + 'static,
{
    fn with_filter_boxed(self, filter: EnvFilter) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync> {
        Box::new(self.with_filter(filter))
    }
}
