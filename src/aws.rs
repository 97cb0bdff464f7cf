//! The one place AWS SDK clients are configured (S3 and Glue; Kinesis later uses the same
//! loader).
//!
//! * Credentials: the SDK's standard chain (environment, profile files, web identity, ECS and
//!   EC2 instance metadata). pgcdc never reads or prints secrets itself.
//! * `[aws] region` overrides the region of the chain (`AWS_REGION`, profile, IMDS);
//!   `[aws] endpoint_url` (or `AWS_ENDPOINT_URL`) points the clients at an S3-compatible
//!   endpoint, and S3 then uses path-style addressing (`http://host/bucket/key`).
//! * HTTP: one hyper 1 client over rustls with the `ring` provider (the one pgcdc already
//!   links), honouring `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
//! * The SDK's own retries are turned off: callers retry with their own back-off and log what
//!   fails (see [`crate::storage::s3`]).
//!
//! Per-target options of S3 sinks (`storage_class`, `sse`, `kms_key_id`) and the `[aws]`
//! section travel together as [`S3Options`] ([`S3Options::of`]), passed to
//! [`crate::storage::open`] by whoever opens a target.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;

use crate::config::{AwsConfig, Config, ParquetSinkConfig};

/// What an S3 target needs beyond its location: the `[aws]` section and the sink's upload
/// options.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub aws: Option<AwsConfig>,
    /// `STANDARD`, `STANDARD_IA`, ... passed to PutObject and CreateMultipartUpload.
    pub storage_class: Option<String>,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// The KMS key for `sse = "aws:kms"`.
    pub kms_key_id: Option<String>,
    /// The lease of the target's lock object; `None`: the default (60 s).
    pub lock_lease: Option<Duration>,
}

impl S3Options {
    /// The options of the S3 target of `sink`: its upload settings and the `[aws]` section.
    pub fn of(config: &Config, sink: &ParquetSinkConfig) -> S3Options {
        S3Options {
            aws: config.aws.clone(),
            storage_class: sink.storage_class.clone(),
            sse: sink.sse.clone(),
            kms_key_id: sink.kms_key_id.clone(),
            lock_lease: sink.lock_lease,
        }
    }
}

/// The HTTP client of every AWS client: hyper 1 + rustls/ring, proxies from the
/// environment.
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut b = Connector::builder().proxy_config(ProxyConfig::from_env());
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.tls_provider(Provider::Rustls(CryptoMode::Ring)).build()
    })
}

/// Loads the shared SDK configuration (credentials chain, region, endpoint, HTTP client,
/// timeouts, no SDK retries). Must run inside a tokio runtime.
pub async fn load(aws: Option<&AwsConfig>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(region) = aws.and_then(|a| a.region.clone()) {
        loader = loader.region(Region::new(region));
    }
    if let Some(url) = aws.and_then(|a| a.endpoint_url.clone()) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client over `sdk`: path-style addressing when an endpoint URL is set.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A Glue client over `sdk` (the Data Catalog of `[catalog]`, see [`crate::sink::parquet::glue`]).
pub fn glue_client(sdk: &SdkConfig) -> aws_sdk_glue::Client {
    aws_sdk_glue::Client::new(sdk)
}

/// A tokio runtime of an AWS client's own, so that its calls can be made from any thread
/// (the pipeline's, a load worker's), and waited for: [`Bridge::run`]. Shut down in the
/// background when dropped (dropping a runtime must not block, as the drop may happen
/// inside another runtime).
pub struct Bridge {
    rt: Option<tokio::runtime::Runtime>,
    name: &'static str,
}

impl Bridge {
    /// A runtime with `threads` worker threads named `name`.
    pub fn new(name: &'static str, threads: usize) -> crate::error::Result<Bridge> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| crate::error::Error::io(format!("starting the {name} runtime"), &e))?;
        Ok(Bridge { rt: Some(rt), name })
    }

    /// Runs `f` on this runtime and waits for it, from any thread that is not one of this
    /// runtime's own.
    pub fn run<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> crate::error::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| crate::error::Error::runtime(format!("the {} runtime stopped", self.name)))
    }

    /// The runtime, for background tasks (lease renewals).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("runtime lives until drop").handle()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `d` scaled by a random factor in [0.5, 1]: the jitter of every back-off, so that
/// clients retrying together spread out.
pub fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::Instant::now().elapsed().as_nanos());
    let frac = (h.finish() % 1000) as f64 / 1000.0;
    d.mul_f64(0.5 + 0.5 * frac)
}

/// An error and its causes in one line, each cause once (`dispatch failure: io error: ...:
/// Connection reset by peer`): the SDK's errors nest the same text several levels deep.
/// Never the SDK's debug dump of the request or answer, and nothing here holds a secret
/// (the SDK's errors name providers and endpoints, not keys). For logs and error messages.
pub fn error_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(2));
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }
}
