//! `[metrics]` (SPEC 4, 8; issue 11): where `pgcdc run` serves `/metrics` (Prometheus) and
//! `/healthz`, and the limits past which `/healthz` answers 503. The server and the
//! health rules are [`crate::metrics`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::units;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` (`127.0.0.1:9187`, `[::1]:9187`, `0.0.0.0:9187`); port 0 takes a free
    /// port, logged as `metrics listening` (tests).
    pub listen: String,
    /// `/healthz` is unhealthy when WAL has waited past the durable position this long
    /// without the durable position moving (default 5 minutes).
    #[serde(default = "default_max_durable_age", with = "units::duration")]
    pub max_durable_age: Duration,
    /// Unhealthy while the source lag in bytes is above this; off unless set.
    #[serde(default, with = "units::opt_size")]
    pub max_lag_bytes: Option<u64>,
    /// Unhealthy while the source lag in seconds is above this; off unless set.
    #[serde(default, with = "units::opt_duration")]
    pub max_lag: Option<Duration>,
    /// Unhealthy when a sink has been failing (retrying) for longer than this (default 1
    /// minute).
    #[serde(default = "default_max_sink_failing", with = "units::duration")]
    pub max_sink_failing: Duration,
}

fn default_max_durable_age() -> Duration {
    Duration::from_secs(300)
}

fn default_max_sink_failing() -> Duration {
    Duration::from_secs(60)
}

impl MetricsConfig {
    /// The address `listen` names. Only numeric addresses are accepted, so that what is
    /// bound never depends on name resolution.
    pub fn address(&self) -> Result<SocketAddr> {
        let raw = self.listen.trim();
        raw.parse::<SocketAddr>().map_err(|_| {
            let hint = if raw.starts_with("localhost:") {
                "write an IP address: listen = \"127.0.0.1:9187\"".to_string()
            } else {
                "write host:port with a numeric host, e.g. listen = \"127.0.0.1:9187\" or \"[::1]:9187\"".to_string()
            };
            Error::config(format!("[metrics] listen = {raw:?} is not an address:port")).with_hint(hint)
        })
    }
}

/// Checks `[metrics]`: a parseable `listen` and non-zero limits. Called by
/// [`super::Config::parse`]; errors are configuration errors naming the key.
pub fn validate(m: &MetricsConfig) -> Result<()> {
    m.address()?;
    if m.max_durable_age.is_zero() {
        return Err(
            Error::config("[metrics] max_durable_age must be longer than 0s")
                .with_hint("write e.g. max_durable_age = \"5m\""),
        );
    }
    if m.max_sink_failing.is_zero() {
        return Err(
            Error::config("[metrics] max_sink_failing must be longer than 0s")
                .with_hint("write e.g. max_sink_failing = \"1m\""),
        );
    }
    if m.max_lag.is_some_and(|d| d.is_zero()) || m.max_lag_bytes == Some(0) {
        return Err(
            Error::config("[metrics] max_lag and max_lag_bytes must be above 0")
                .with_hint("leave them out to not limit the lag"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const MINIMAL: &str = "[source]\nurl = \"postgres://u@h/d\"\n[[sink]]\nkind = \"parquet\"\nurl = \"file:///tmp/out\"\n";

    #[test]
    fn metrics_section_defaults_and_limits() {
        let c = Config::parse(&format!("{MINIMAL}[metrics]\nlisten = \"127.0.0.1:0\"\n")).unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(m.address().unwrap().port(), 0);
        assert_eq!(m.max_durable_age.as_secs(), 300);
        assert_eq!(m.max_sink_failing.as_secs(), 60);
        assert_eq!((m.max_lag, m.max_lag_bytes), (None, None));
        let c = Config::parse(&format!(
            "{MINIMAL}[metrics]\nlisten = \"[::1]:9187\"\nmax_durable_age = \"30s\"\nmax_lag = \"2m\"\nmax_lag_bytes = \"1GiB\"\nmax_sink_failing = \"10s\"\n"
        ))
        .unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(m.max_durable_age.as_secs(), 30);
        assert_eq!(m.max_lag.unwrap().as_secs(), 120);
        assert_eq!(m.max_lag_bytes, Some(1 << 30));
        assert_eq!(m.max_sink_failing.as_secs(), 10);
    }

    #[test]
    fn bad_metrics_settings_are_configuration_errors() {
        for (body, want) in [
            ("listen = \"9187\"", "is not an address:port"),
            ("listen = \"localhost:9187\"", "is not an address:port"),
            ("listen = \"127.0.0.1:99999\"", "is not an address:port"),
            (
                "listen = \"127.0.0.1:9187\"\nmax_durable_age = \"0s\"",
                "max_durable_age",
            ),
            (
                "listen = \"127.0.0.1:9187\"\nmax_lag_bytes = 0",
                "max_lag_bytes",
            ),
            (
                "listen = \"127.0.0.1:9187\"\nmax_lagg = \"1m\"",
                "unknown key `max_lagg`",
            ),
            ("port = 9187", "unknown key `port`"),
        ] {
            let e = Config::parse(&format!("{MINIMAL}[metrics]\n{body}\n")).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{body}: {e}");
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }
}
