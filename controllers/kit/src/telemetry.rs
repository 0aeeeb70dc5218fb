//! Tracing initialisation: an `EnvFilter` (`RUST_LOG` style directives) and text or JSON output on stderr.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

use crate::KitError;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (expected text or json)")),
        }
    }
}

/// Installs the global subscriber. `filter` uses `EnvFilter` syntax (e.g. `info,danm_webhook=debug`); when `None`,
/// `RUST_LOG` is used, else `info`. Fails if a subscriber is already installed.
pub fn init_tracing(format: LogFormat, filter: Option<&str>) -> Result<(), KitError> {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| KitError::Tracing(format!("bad filter {f:?}: {e}")))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| KitError::Tracing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
