//! Running the pgcdc binary from a test: one-shot commands off the runtime's threads,
//! background runs that never outlive the test, and readable views of their output.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Runs a prepared command (stdin closed) to completion off the runtime's threads.
pub async fn output_of(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("run pgcdc"))
        .await
        .expect("join")
}

/// `pgcdc <command> -c <config> <more>`, waited for.
pub async fn pgcdc_c(command: &str, config: &Path, more: &[&str]) -> Output {
    let mut cmd = super::pgcdc();
    cmd.arg(command).arg("-c").arg(config).args(more);
    output_of(cmd).await
}

/// Sends SIGTERM (pgcdc's clean stop) to a child that has not been waited for yet.
pub fn sigterm(child: &Child) {
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet, so the
    // pid cannot have been reused.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// A child pgcdc that never outlives the test: [`ChildGuard::stop`] stops it with SIGTERM
/// (SIGKILL after a timeout); dropping the guard, also when the test panics, kills it.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Spawns `cmd` (whatever stdio the caller set up) under a guard.
    pub fn spawn(cmd: &mut Command, what: &str) -> ChildGuard {
        ChildGuard(Some(
            cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}")),
        ))
    }

    /// SIGTERM, then waits up to `timeout` for the child to exit (SIGKILL after that);
    /// returns its output (what the caller captured). Captured pipes are drained while
    /// waiting, so a child with much to say cannot block on a full pipe.
    pub fn stop(&mut self, timeout: Duration) -> Output {
        let child = self.0.take().expect("still running");
        sigterm(&child);
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(timeout) {
            Ok(out) => out,
            Err(_) => {
                // SAFETY: kill(2) on our own child, which the waiter had not reaped when the
                // timeout fired (it would have sent its output); a pid reused in between is
                // not a concern for a test.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                rx.recv().expect("waiter thread")
            }
        };
        out.expect("wait")
    }

    /// Whether the child has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for the child to exit by itself (SIGKILL after that); returns
    /// its output.
    pub fn wait(&mut self, timeout: Duration) -> Output {
        let deadline = std::time::Instant::now() + timeout;
        while self.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut child = self.0.take().expect("still guarded");
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        child.wait_with_output().expect("wait")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Captured stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Captured stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// Asserts that the command exited 0, showing its exit code, stdout and stderr when not.
#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
