//! A throwaway PostgreSQL cluster for `pgcdc demo` and the benchmark: `initdb` into a
//! temporary directory, `wal_level = logical`, a free port on 127.0.0.1, `pg_ctl` to start
//! and stop. As root the server runs as the `postgres` user (PostgreSQL refuses root).
//! Dropping the value stops the server and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result, ResultExt};

pub struct LocalCluster {
    bindir: PathBuf,
    dir: PathBuf,
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
    let bind = "binding a free port on 127.0.0.1";
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io(bind, &e))?;
    Ok(l.local_addr().map_err(|e| Error::io(bind, &e))?.port())
}

impl LocalCluster {
    /// Creates and starts a cluster with `extra_conf` appended to postgresql.conf.
    pub fn start(extra_conf: &str) -> Result<LocalCluster> {
        let bindir = find_bindir()?;
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("pgcdc-pg-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&dir).runtime_ctx(|| format!("creating {}", dir.display()))?;
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().map(|s| s.success());
            if !matches!(ok, Ok(true)) {
                return Err(Error::runtime("running as root, but cannot hand the cluster directory to user postgres")
                    .with_hint("create the postgres user (the PostgreSQL packages do), or run as a normal user"));
            }
        }
        let port = free_port()?;
        let cluster = LocalCluster { bindir, dir, port, as_postgres };
        let data = cluster.data_dir();
        cluster.run("initdb", &["-D", &data, "--auth=trust", "-E", "UTF8", "--locale=C", "-U", "postgres"])?;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nwal_level = logical\n\
             max_replication_slots = 20\nmax_wal_senders = 20\nfsync = off\nsynchronous_commit = off\n{extra_conf}\n",
            cluster.dir.display()
        );
        let conf_path = cluster.dir.join("data").join("postgresql.conf");
        let mut existing =
            std::fs::read_to_string(&conf_path).runtime_ctx(|| format!("reading {}", conf_path.display()))?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).runtime_ctx(|| format!("writing {}", conf_path.display()))?;
        let log = cluster.dir.join("server.log").to_string_lossy().into_owned();
        cluster.run("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "start"]).map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            e.context(format!("starting PostgreSQL (log: {})", tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ")))
        })?;
        Ok(cluster)
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Runs a server binary (as `postgres` when we are root).
    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::runtime(format!("running {}: {e}", exe.display())))?;
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

    pub fn stop(&self) {
        let _ = self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
