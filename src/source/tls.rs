//! TCP + TLS connection setup shared by the replication connection and ordinary SQL.
//!
//! pgcdc negotiates TLS itself (SSLRequest, then rustls) and hands the resulting stream to
//! either the walsender client or `tokio_postgres::Config::connect_raw`. `sslmode` follows
//! libpq: `disable` never encrypts; `allow`/`prefer` encrypt when the server can and do not
//! verify; `require` insists on TLS without verifying; `verify-ca` checks the chain against
//! `sslrootcert` (or the system roots); `verify-full` also checks the host name.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::conninfo::{ConnInfo, SslMode};
use crate::error::{Error, Result};

/// A connection to the server, encrypted or not.
pub enum PgStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl PgStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, PgStream::Tls(_))
    }
}

impl AsyncRead for PgStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens TCP to the server and negotiates TLS as `info.sslmode` asks.
pub async fn connect(info: &ConnInfo) -> Result<PgStream> {
    let addr = format!("{}:{}", info.host, info.port);
    let tcp = tokio::time::timeout(info.connect_timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| {
            Error::runtime(format!("timed out connecting to PostgreSQL at {addr}"))
                .with_hint("check source.url host and port, and that the server accepts TCP connections")
                .retryable()
        })?
        .map_err(|e| {
            let err = Error::io(format!("cannot connect to PostgreSQL at {addr}"), &e)
                .with_hint("check source.url host and port, firewalls, and that the server is running");
            if e.kind() == std::io::ErrorKind::ConnectionRefused { err.unreachable() } else { err }
        })?;
    tcp.set_nodelay(true).ok();
    if matches!(info.sslmode, SslMode::Disable | SslMode::Allow) {
        return Ok(PgStream::Plain(tcp));
    }
    let mut tcp = tcp;
    // SSLRequest: length 8, code 80877103.
    let ssl_request = || format!("asking {addr} for TLS (SSLRequest)");
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.map_err(|e| Error::io(ssl_request(), &e))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(|e| Error::io(ssl_request(), &e))?;
    match answer[0] {
        b'S' => {}
        b'N' if info.sslmode == SslMode::Prefer => return Ok(PgStream::Plain(tcp)),
        b'N' => {
            return Err(Error::runtime(format!(
                "the server at {addr} does not accept TLS but sslmode={:?} requires it",
                info.sslmode
            ))
            .with_hint("enable ssl on the server, or lower sslmode in source.url"))
        }
        other => return Err(Error::runtime(format!("unexpected answer {other:#x} to SSLRequest from {addr}"))),
    }
    let config = client_config(info)?;
    let name = ServerName::try_from(info.host.clone())
        .map_err(|_| Error::config(format!("`{}` is not a valid TLS server name", info.host)))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| {
        Error::runtime(format!("TLS handshake with {addr} failed: {e}"))
            .with_hint("check sslrootcert and that the certificate matches the host name (or use sslmode=verify-ca/require)")
    })?;
    Ok(PgStream::Tls(Box::new(tls)))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(info: &ConnInfo) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::runtime(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match info.sslmode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(root_store(info)?);
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| Error::runtime(format!("TLS setup: {e}")))?;
            Arc::new(Verifier { inner: Some(inner), check_name: info.sslmode == SslMode::VerifyFull })
        }
        _ => Arc::new(Verifier { inner: None, check_name: false }),
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

fn root_store(info: &ConnInfo) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match &info.sslrootcert {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| {
                    Error::config(format!("cannot read sslrootcert {}: {e}", path.display()))
                        .with_hint("point sslrootcert at a PEM file with the CA certificate")
                })?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::config(format!("sslrootcert {} is not valid PEM: {e}", path.display())))?;
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| Error::config(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(c);
            }
        }
    }
    if store.is_empty() {
        return Err(Error::config("no trusted CA certificates for sslmode=verify-ca/verify-full")
            .with_hint("set sslrootcert=/path/to/ca.pem in source.url"));
    }
    Ok(store)
}

/// Verifies per sslmode: no verification (`inner = None`), chain only, or chain and name.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else { return Ok(ServerCertVerified::assertion()) };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
