//! `pgcdc cluster` (hidden): the throwaway cluster of [`LocalCluster`] for tools outside the
//! Rust tests, so that `make bench` starts PostgreSQL exactly as the demo and the tests do.
//!
//! Contract: starts a cluster with the given extra settings, prints one JSON line on stdout
//! (`port`, `dir`, `data_dir`, `bindir`, `postmaster_pid`, `url`, the URL of database
//! `postgres`) and then holds it until stdin reaches end of file (the caller closes the pipe
//! or exits), after which the server is stopped and its directory removed. Blocks the
//! calling thread; errors (no server binaries, initdb failing) come back before anything is
//! printed.

use std::io::{BufRead, Write};

use super::cluster::LocalCluster;
use crate::error::{Error, Result};

/// See the module doc. `extra_conf` lines are appended to postgresql.conf after the base
/// settings, so they win.
pub fn serve(extra_conf: &[String]) -> Result<()> {
    let cluster = LocalCluster::start(&extra_conf.join("\n"))?;
    let pid = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
    let line = serde_json::json!({
        "port": cluster.port,
        "dir": cluster.dir(),
        "data_dir": cluster.data_dir(),
        "bindir": cluster.bindir(),
        "postmaster_pid": pid,
        "url": cluster.url("postgres"),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| Error::io("writing the cluster's description to stdout", &e))?;
    drop(out);
    // Hold the cluster until the caller closes our stdin.
    let mut sink = String::new();
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    while lock.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
        sink.clear();
    }
    drop(cluster);
    Ok(())
}
