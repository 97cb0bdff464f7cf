//! The HTTP listener of `[metrics] listen`: hyper's HTTP/1 server on the run's tokio
//! runtime.
//!
//! * `GET /metrics`: every metric, Prometheus text format 0.0.4.
//! * `GET /healthz`: `200 ok` while healthy, `503` and the one-line reason otherwise (see
//!   [`super::health`]).
//! * Any other path: 404; another method on these paths: 405.
//!
//! The server lives as long as the returned [`MetricsServer`]; dropping it stops accepting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{get, install, Limits, Metrics};
use crate::config::MetricsConfig;
use crate::error::{Error, Result};

/// The running server; stops accepting when dropped.
pub struct MetricsServer {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `/metrics` and `/healthz` at `[metrics] listen` and turns the recorders
/// on; `None` without `[metrics]`. Logs `metrics listening` with the bound `address` (the
/// real port when `listen` asks for port 0). An address that cannot be bound (in use, not
/// local, not permitted) is a configuration error (exit 2) with a hint. Must run inside a
/// tokio runtime; called once per process, by `pgcdc run` before it connects anywhere.
pub async fn serve(config: Option<&MetricsConfig>) -> Result<Option<MetricsServer>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let wanted = config.address()?;
    let listener = TcpListener::bind(wanted)
        .await
        .map_err(|e| bind_error(wanted, &e))?;
    let address = listener.local_addr().map_err(|e| bind_error(wanted, &e))?;
    if !install(Metrics::new(Limits::from_config(config))) {
        return Err(Error::runtime(
            "internal: metrics are already served by this process",
        ));
    }
    tracing::info!(%address, "metrics listening");
    let task = tokio::spawn(accept(listener));
    Ok(Some(MetricsServer { address, task }))
}

fn bind_error(address: SocketAddr, e: &std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("another process listens on port {}: stop it, or choose another [metrics] listen", address.port())
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "the address is not one of this machine's: use 127.0.0.1, 0.0.0.0 or an address of this host".to_string()
        }
        std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: choose a port above 1024".to_string(),
        _ => "check [metrics] listen".to_string(),
    };
    Error::config(format!("cannot listen on {address} for [metrics]: {e}")).with_hint(hint)
}

async fn accept(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("metrics server: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                .await;
            if let Err(e) = served {
                tracing::debug!("metrics server: connection ended: {e}");
            }
        });
    }
}

async fn handle(req: Request<Incoming>) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    Ok(respond(req.method(), req.uri().path()))
}

/// The answer to `method path`.
fn respond(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let Some(m) = get() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not initialised\n".into(),
        );
    };
    if path != "/metrics" && path != "/healthz" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n".into(),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/metrics" {
        let mut r = Response::new(Full::new(Bytes::from(m.exposition())));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        );
        return r;
    }
    match m.refresh() {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", why.replace('\n', " ")),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
