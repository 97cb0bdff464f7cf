//! A throwaway PostgreSQL cluster: the one place that runs `initdb` and `pg_ctl`. Used by
//! `pgcdc demo`, and by the integration tests (`tests/it/support/pg.rs`), which add TLS
//! certificates, roles and their settings through the step-by-step API below.
//!
//! The cluster lives in a new temporary directory (kept short, for the unix socket path):
//! `data/` is the data directory, `server.log` the server log, and the socket is there too. It
//! listens on 127.0.0.1 at a free port with `wal_level = logical`, `fsync = off`. As root every
//! server binary runs as the `postgres` user via `runuser` (PostgreSQL refuses root) and the
//! directory is handed to that user. Dropping the value stops the server and removes the
//! directory; a value that is never dropped (a `static`) needs [`LocalCluster::stop_shell_command`]
//! run by someone else once the process is gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Settings every cluster gets (appended to `postgresql.conf` by [`LocalCluster::init`]);
/// `{dir}` is the cluster directory. Later lines (the caller's) override them.
const BASE_CONF: &str = "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\nwal_level = logical\n\
     max_replication_slots = 20\nmax_wal_senders = 20\nfsync = off\nsynchronous_commit = off\n";

/// How often [`LocalCluster::start_server`] tries another port when the one it picked was
/// taken between picking and binding.
const START_ATTEMPTS: usize = 5;

pub struct LocalCluster {
    bindir: PathBuf,
    dir: PathBuf,
    /// The TCP port on 127.0.0.1; 0 until [`LocalCluster::start_server`] succeeded.
    pub port: u16,
    as_postgres: bool,
}

/// Finds the server binaries: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf> {
    let has_server = |p: &Path| p.join("initdb").exists() && p.join("postgres").exists() && p.join("pg_ctl").exists();
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok().map(|v| (v, e.path().join("bin"))))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    candidates.into_iter().find(|p| has_server(p)).ok_or_else(|| {
        Error::runtime("PostgreSQL server binaries (initdb, postgres, pg_ctl) were not found")
            .with_hint("install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or put pg_config on PATH")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> Result<u16> {
    let io = |e: std::io::Error| Error::runtime(format!("cannot pick a free port on 127.0.0.1: {e}"));
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(l.local_addr().map_err(io)?.port())
}

/// Single-quotes a string for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A new, empty directory `pgcdc-pg-<pid>-<n>-<nanos>` under the temp dir, or under `/tmp`
/// when the temp dir's path is long (a unix socket path must stay under ~107 bytes).
fn new_cluster_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = std::env::temp_dir();
    let base = if tmp.as_os_str().len() > 40 { PathBuf::from("/tmp") } else { tmp };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("pgcdc-pg-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| Error::runtime(format!("cannot create the cluster directory {}: {e}", dir.display())))?;
    Ok(dir)
}

impl LocalCluster {
    /// Creates and starts a cluster (see the module doc) with `extra_conf` appended to
    /// postgresql.conf. What `pgcdc demo` calls.
    pub fn start(extra_conf: &str) -> Result<LocalCluster> {
        let mut cluster = LocalCluster::create(find_bindir()?)?;
        cluster.init()?;
        cluster.append_conf(extra_conf)?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Step 1: a new, empty cluster directory for the server binaries in `bindir`; nothing is
    /// initialised or started yet. The caller may put files there (certificates) before
    /// [`LocalCluster::init`]. Dropping the value removes the directory.
    pub fn create(bindir: PathBuf) -> Result<LocalCluster> {
        let dir = new_cluster_dir()?;
        Ok(LocalCluster { bindir, dir, port: 0, as_postgres: is_root() })
    }

    /// Step 2: as root, hands the directory (with what the caller put there) to `postgres`;
    /// runs `initdb` (trust authentication, UTF8, locale C, superuser `postgres`) into
    /// `data/` and appends the base settings (see the module doc) to postgresql.conf.
    pub fn init(&self) -> Result<()> {
        if self.as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir).status().map(|s| s.success());
            if !matches!(ok, Ok(true)) {
                return Err(Error::runtime("running as root, but cannot hand the cluster directory to user postgres")
                    .with_hint("create the postgres user (the PostgreSQL packages do), or run as a normal user"));
            }
        }
        let data = self.data_dir();
        self.run("initdb", &["-D", &data.to_string_lossy(), "--auth=trust", "-E", "UTF8", "--locale=C", "-U", "postgres", "--no-sync"])?;
        self.append_conf(&BASE_CONF.replace("{dir}", &self.dir.to_string_lossy()))
    }

    /// Appends `text` to postgresql.conf (after [`LocalCluster::init`]; a later line wins).
    pub fn append_conf(&self, text: &str) -> Result<()> {
        let path = self.data_dir().join("postgresql.conf");
        let io = |e: std::io::Error| Error::runtime(format!("cannot extend {}: {e}", path.display()));
        let mut conf = std::fs::read_to_string(&path).map_err(io)?;
        conf.push('\n');
        conf.push_str(text);
        conf.push('\n');
        std::fs::write(&path, conf).map_err(io)
    }

    /// Replaces pg_hba.conf with `text` (after [`LocalCluster::init`], before the start).
    pub fn write_hba(&self, text: &str) -> Result<()> {
        let path = self.data_dir().join("pg_hba.conf");
        std::fs::write(&path, text).map_err(|e| Error::runtime(format!("cannot write {}: {e}", path.display())))
    }

    /// Step 3: starts the server on a free port, trying another one when the port it picked
    /// was taken meanwhile, and waits until it accepts connections. Sets [`LocalCluster::port`].
    pub fn start_server(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            self.port = free_port()?;
            let Err(e) = self.start_again() else { return Ok(()) };
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let port_taken = log.contains("could not bind") || log.contains("could not create");
            if !port_taken || attempt == START_ATTEMPTS {
                return Err(e);
            }
            // Nothing half-started may stay around before the next port is tried.
            let _ = self.stop_server("immediate");
            attempt += 1;
        }
    }

    /// Starts the server (again) on [`LocalCluster::port`] with the same data and waits until
    /// it accepts TCP connections; the error carries the end of the server log.
    pub fn start_again(&self) -> Result<()> {
        let data = self.data_dir().to_string_lossy().into_owned();
        let log = self.log_path().to_string_lossy().into_owned();
        let port = format!("-p {}", self.port);
        self.run("pg_ctl", &["start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &port])
            .and_then(|()| self.wait_ready(Duration::from_secs(60)))
            .map_err(|e| {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                e.context(format!("starting PostgreSQL (log: {})", tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ")))
            })
    }

    /// Waits until `pg_isready` reaches the server on 127.0.0.1 at [`LocalCluster::port`].
    fn wait_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.client_command("pg_isready").args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"]).args(["-d", "postgres", "-t", "5"]).output();
            if matches!(&out, Ok(o) if o.status.success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::runtime(format!("PostgreSQL at 127.0.0.1:{} never became ready", self.port)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl stop -m <mode>` (`smart`, `fast` or `immediate`), waiting up to 60 s.
    pub fn stop_server(&self, mode: &str) -> Result<()> {
        self.run("pg_ctl", &["stop", "-D", &self.data_dir().to_string_lossy(), "-m", mode, "-w", "-t", "60"])
    }

    /// Stops the server (`-m fast`), ignoring errors (it may not run). Also done on drop.
    pub fn stop(&self) {
        let _ = self.stop_server("fast");
    }

    /// A `sh` command line that stops the server (`-m immediate`) as its owner, for a watchdog
    /// that outlives this process (`static` clusters are never dropped).
    pub fn stop_shell_command(&self) -> String {
        let stop = format!(
            "{} stop -D {} -m immediate -w -t 30",
            shell_quote(&self.bindir.join("pg_ctl").to_string_lossy()),
            shell_quote(&self.data_dir().to_string_lossy())
        );
        if self.as_postgres {
            format!("(cd / && runuser -u postgres -- {stop})")
        } else {
            format!("(cd / && {stop})")
        }
    }

    /// The cluster directory (socket, log, `data/`, and what the caller put there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A `Command` for a server binary (`initdb`, `pg_ctl`, ...): as `postgres` when we are
    /// root, in the cluster directory (the caller's cwd may not be readable by `postgres`),
    /// without the libpq variables that would point it elsewhere, with locale C.
    pub fn server_command(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C");
        cmd
    }

    /// A `Command` for a client binary (`psql`, `pg_isready`) as the current user.
    fn client_command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(tool));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a server binary to completion; its stderr and stdout make the error.
    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let out = self
            .server_command(tool)
            .args(args)
            .output()
            .map_err(|e| Error::runtime(format!("running {}: {e}", self.bindir.join(tool).display())))?;
        if !out.status.success() {
            return Err(Error::runtime(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:{port}/{db}?sslmode=disable`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
