//! A single-threaded tokio runtime on an OS thread of its own, for the replication
//! connection and its reader.
//!
//! # Why
//!
//! The reader wakes for every few kilobytes the walsender sends. On the process's
//! multi-threaded runtime each wake-up also unparks a second worker that finds nothing to
//! do (tokio notifies an idle worker whenever a task becomes runnable), so a busy stream
//! cost about 40% more CPU than the work itself (measured on a 1M-row transaction: 7.0–8.6
//! CPU-s for pgcdc with two workers, 5.1–5.7 with one). On its own current-thread runtime
//! the socket's readiness, the reader task and its timers all live on one thread.
//!
//! # Contract
//!
//! * **What runs here.** Futures given to [`OwnThread::spawn`]. A socket (a
//!   [`super::ReplicationConn`]) is registered with the runtime it is *created* on, so
//!   connect on this runtime (spawn the connect) for its reads to be served here.
//!   Awaiting the returned `JoinHandle` works from any runtime or thread.
//! * **Lifetime.** The thread runs until the [`OwnThread`] is dropped; dropping it cancels
//!   the tasks still running there (their sockets close) and joins the thread. Keep it alive
//!   as long as anything created on it is used.
//! * **No blocking.** A task here must not block its thread (it would stall the reader and
//!   with it the keepalive replies to the server).

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// A current-thread runtime driven by a dedicated OS thread (see the module docs).
pub struct OwnThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnThread {
    /// Starts the thread, named `name`.
    pub fn start(name: &str) -> Result<OwnThread> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::runtime(format!("starting the {name} runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // Drives the spawned tasks until the owner is dropped; dropping the runtime
                // then cancels whatever is still running.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| Error::runtime(format!("starting the {name} thread: {e}")))?;
        Ok(OwnThread { handle, stop: Some(stop), thread: Some(thread) })
    }

    /// Runs `fut` on this thread.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The value of a task run on an [`OwnThread`]; a panic or cancellation becomes an error
/// naming `what`.
pub async fn joined<T>(task: JoinHandle<T>, what: &str) -> Result<T> {
    task.await.map_err(|e| Error::runtime(format!("{what} failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_on_the_named_thread_and_stop_with_it() {
        let own = OwnThread::start("pgcdc-test-own").unwrap();
        let name = joined(own.spawn(async { std::thread::current().name().map(str::to_string) }), "probe").await.unwrap();
        assert_eq!(name.as_deref(), Some("pgcdc-test-own"));
        let pending = own.spawn(std::future::pending::<()>());
        tokio::task::block_in_place(|| drop(own));
        let err = joined(pending, "the pending task").await.unwrap_err();
        assert!(err.to_string().contains("the pending task failed"), "{err}");
    }
}
