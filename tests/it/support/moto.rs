//! A moto server (mock AWS: S3, Kinesis, DMS, Glue, ...) per test binary, from the project
//! virtualenv. Stopped by a watchdog once the test process exits.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::py::python;
use super::util::{free_port, spawn_watchdog};

#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    pid: u32,
    log: std::path::PathBuf,
}

static MOTO: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// The moto server of this test binary, started on first use (blocking).
pub fn moto() -> &'static MotoServer {
    match MOTO.get_or_init(|| {
        std::panic::catch_unwind(MotoServer::start).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    }) {
        Ok(m) => m,
        Err(msg) => panic!("the moto server could not be started:\n{msg}"),
    }
}

impl MotoServer {
    pub const REGION: &'static str = "us-east-1";
    pub const ACCESS_KEY_ID: &'static str = "testing";
    pub const SECRET_ACCESS_KEY: &'static str = "testing";

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: use as `[aws] endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the AWS environment (fake credentials, region, no proxies/profiles) on `cmd`.
    pub fn aws_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", Self::SECRET_ACCESS_KEY)
            .env("AWS_REGION", Self::REGION)
            .env("AWS_DEFAULT_REGION", Self::REGION)
            .env("AWS_ENDPOINT_URL", self.endpoint_url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("http_proxy")
    }

    /// moto's output so far.
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wipes all state (buckets, streams, ...) via moto's reset API.
    pub fn reset(&self) {
        http_request(self.port, "POST", "/moto-api/reset").expect("reset moto");
    }

    fn start() -> MotoServer {
        let py = python();
        let log = std::env::temp_dir().join(format!("pgcdc-moto-{}.log", std::process::id()));
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let logf = std::fs::File::create(&log).expect("create moto log");
            let mut child = Command::new(&py)
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .env("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", Self::SECRET_ACCESS_KEY)
                .env("AWS_DEFAULT_REGION", Self::REGION)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup log"))
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn moto server with {}: {e}", py.display()));
            let pid = child.id();
            spawn_watchdog(&format!(
                "kill {pid} 2>/dev/null; sleep 1; kill -9 {pid} 2>/dev/null; rm -f '{}'",
                log.display()
            ));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!(
                        "moto exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if http_request(port, "GET", "/moto-api/").is_ok() {
                    // Reaped by nobody on purpose: the watchdog ends it after the test exits.
                    std::mem::forget(child);
                    return MotoServer { port, pid, log };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "moto server did not answer on port {port} within 60s:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("could not start the moto server: {last_err}");
    }
}

/// Minimal HTTP/1.0 request; Ok(status line) for any HTTP answer.
fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.lines().next().unwrap_or_default().to_string();
    if status.starts_with("HTTP/") {
        Ok(status)
    } else {
        Err(std::io::Error::other(format!("not HTTP: {status:?}")))
    }
}
