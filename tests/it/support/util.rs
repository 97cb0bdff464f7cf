//! Small helpers shared by the harness modules and the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The repository root (where Cargo.toml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `Command` for the pgcdc binary built for this test run.
///
/// Environment variables that would silently change which server or credentials the binary
/// uses (libpq's `PG*`, AWS profile settings) are removed, so a test says everything it means
/// in its config or sets it explicitly on the returned command.
///
/// `PGCDC_TEST_BIN`, when set, names the binary instead of cargo's `target/…/pgcdc` (which
/// another worktree's build sharing the target directory may have replaced).
pub fn pgcdc() -> Command {
    let bin = std::env::var_os("PGCDC_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pgcdc").into());
    let mut cmd = Command::new(bin);
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Writes `toml` to `dir/pgcdc.toml` (creating `dir`) and returns the file's path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join("pgcdc.toml");
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<counter>_<pid>`: unique within the machine for the life of this process. Lower-case
/// digits and `_` only, so it is valid in database, slot and publication names.
pub fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{n}_{}", std::process::id())
}

/// Turns a free-form hint into something usable as (part of) a PostgreSQL identifier.
pub fn sanitize_ident(hint: &str, max_len: usize) -> String {
    let mut s: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 't');
    }
    s.truncate(max_len);
    s
}

/// Runs a command to completion and panics with its output when it fails.
pub fn run_checked(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Picks a currently free TCP port on 127.0.0.1 (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Starts a detached watchdog that runs `cleanup` (a shell snippet) once this process has
/// exited. Rust has no global teardown for test binaries, so this is how servers started by
/// the harness are stopped. The watchdog gets its own session so that nothing that kills the
/// test's process group (a timeout, Ctrl-C) kills it before it cleans up.
pub fn spawn_watchdog(cleanup: &str) {
    use std::os::unix::process::CommandExt;
    // The outer `sh` backgrounds the loop and exits at once (and is waited for); the loop is
    // re-parented to init, so no zombie is left in this process.
    let script = format!(
        "( while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup} ) \
         </dev/null >/dev/null 2>&1 &",
        pid = std::process::id()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let status = cmd.status().expect("spawn watchdog (sh)");
    assert!(status.success(), "watchdog shell failed: {status}");
}

/// Single-quotes a string for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
