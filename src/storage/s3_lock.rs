//! The writer lock of an S3 target (issue 7 step 4): the object `_pgcdc/lock`, holding the
//! holder (host, pid, since) and a lease expiry.
//!
//! * Taking it: a create-only put (`If-None-Match: *`). When the object is there and its
//!   lease is still running, the lock is refused naming the holder (exit 1). When its lease
//!   has expired (the holder crashed or lost the endpoint for longer than the lease), it is
//!   taken over with a put conditional on the ETag that was read (`If-Match`), so of two
//!   processes taking over at once only one wins.
//! * Holding it: a background task renews the lease every [`RENEW_EVERY`] with `If-Match` on
//!   the ETag of its own last write. If a renewal is refused, another process took over: the
//!   task logs it and stops; this process's next progress write is then refused too (progress
//!   objects are conditional puts), so it stops without writing more.
//! * Releasing it: dropping the lock stops the renewals and deletes the object if it is
//!   still this process's (one attempt, 5 s at most; a lock left behind expires by itself).
//!
//! The lease is [`LEASE`] (60 s): after a crash, a new run on the same target can start once
//! that long has passed since the crashed process's last renewal; on the same host, at once
//! when the holder's pid no longer exists (the lock object names host and pid). Expiry is judged with the
//! wall clock of the process that wants the lock, so the hosts' clocks must agree to within
//! a fraction of the lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::lock::{in_use_error, LockHolder, LOCK_KEY};
use super::s3::{get_object, put_object, Target};
use crate::aws::Bridge;
use super::{PutMode, TargetLock, Version};
use crate::error::Result;

/// How long a lock stays valid without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the holder renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);

/// What this process knows of its own lease, shared by the lock and the storage's writes:
/// until when the lease surely holds (measured from *before* the write that granted or
/// renewed it), and whether a renewal was refused. A storage that never took the lock
/// (read-only commands, tests of the storage itself) is not checked.
#[derive(Default)]
pub(super) struct Lease {
    valid_until: Mutex<Option<Instant>>,
    lost: AtomicBool,
}

impl Lease {
    fn granted(&self, sent: Instant, lease: Duration) {
        *self.valid_until.lock().expect("lease") = Some(sent + lease);
    }

    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Before every write: `Ok` unless this process took the lock and has lost it or let
    /// it lapse (paused, or cut off from the endpoint for longer than the lease), in which
    /// case another run may have taken over and this one must not write again.
    pub(super) fn check(&self, target: &str) -> Result<()> {
        let until = *self.valid_until.lock().expect("lease");
        let lapsed = until.is_some_and(|u| Instant::now() >= u);
        if self.lost.load(Ordering::SeqCst) || lapsed {
            return Err(crate::error::Error::runtime(format!(
                "{target}: this run no longer holds the target's lock (its lease lapsed or another run took it over), so it stops without writing"
            ))
            .with_hint("this happens when a run is paused or cut off from the endpoint for longer than lock_lease; start pgcdc run again"));
        }
        Ok(())
    }
}

/// The content of `_pgcdc/lock` on S3.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockRecord {
    #[serde(flatten)]
    pub holder: LockHolder,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn record(holder: &LockHolder, lease: Duration) -> Vec<u8> {
    let r = LockRecord {
        holder: holder.clone(),
        expires_at_ms: now_ms() + lease.as_millis() as u64,
    };
    serde_json::to_vec_pretty(&r).expect("serialisable")
}

/// Whether the holder is a process of this host that no longer exists (a run killed here):
/// its lock is taken over at once instead of after the lease.
fn holder_is_gone(h: &LockHolder) -> bool {
    if h.host != super::lock::host_name() || h.pid == 0 || h.pid == std::process::id() {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the pid exists.
    let rc = unsafe { libc::kill(h.pid as libc::pid_t, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Keeps the lock: renews it in the background, releases it on drop.
struct Held {
    bridge: Arc<Bridge>,
    t: Target,
    version: Arc<Mutex<Version>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
        let (t, mine) = (
            self.t.clone(),
            self.version.lock().expect("version").clone(),
        );
        let _ = self.bridge.run(async move {
            let release = async {
                if let Ok(Some((_, v))) = get_object(&t, LOCK_KEY).await {
                    if v == mine {
                        let key = format!("{}{LOCK_KEY}", t.prefix);
                        let _ = t
                            .client
                            .delete_object()
                            .bucket(&t.bucket)
                            .key(key)
                            .send()
                            .await;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), release).await;
        });
    }
}

/// Takes the lock of the target `t` (see the module docs) with the target's `lock_lease`
/// (default [`LEASE`]), renewed every third of it; `state` learns the lease.
pub(super) fn acquire(bridge: &Arc<Bridge>, t: &Target, state: &Arc<Lease>) -> Result<TargetLock> {
    let lease = t.opts.lock_lease.unwrap_or(LEASE);
    let renew_every = if t.opts.lock_lease.is_some() { lease / 3 } else { RENEW_EVERY };
    acquire_with(bridge, t, lease, renew_every, state)
}

/// [`acquire`] with an explicit lease and renewal period (tests use short ones).
pub(super) fn acquire_with(
    bridge: &Arc<Bridge>,
    t: &Target,
    lease: Duration,
    renew_every: Duration,
    state: &Arc<Lease>,
) -> Result<TargetLock> {
    let holder = LockHolder::this_process();
    let tt = t.clone();
    let h = holder.clone();
    let sent = Instant::now();
    let version = bridge.run(async move {
        match put_object(&tt, LOCK_KEY, record(&h, lease), PutMode::CreateOnly).await {
            Ok(v) => return Ok(v),
            Err(e) if !super::is_refused(&e) => return Err(e),
            Err(_) => {}
        }
        let Some((data, v)) = get_object(&tt, LOCK_KEY).await? else {
            // Released between the two calls: try once more, create-only.
            return put_object(&tt, LOCK_KEY, record(&h, lease), PutMode::CreateOnly)
                .await
                .map_err(|_| in_use_error(&tt.describe(), None));
        };
        let current: Option<LockRecord> = serde_json::from_slice(&data).ok();
        match &current {
            Some(r) if r.expires_at_ms > now_ms() && !holder_is_gone(&r.holder) => {
                Err(in_use_error(&tt.describe(), Some(&r.holder)))
            }
            _ => {
                let taken = put_object(&tt, LOCK_KEY, record(&h, lease), PutMode::ReplaceIf(&v))
                    .await
                    .map_err(|_| in_use_error(&tt.describe(), None))?;
                if let Some(r) = current {
                    tracing::warn!(
                        target = %tt.describe(),
                        "took over the lock of pgcdc pid {} on host {} (since {}): its lease had expired",
                        r.holder.pid,
                        r.holder.host,
                        r.holder.since
                    );
                }
                Ok(taken)
            }
        }
    })??;
    state.granted(sent, lease);
    let version = Arc::new(Mutex::new(version));
    let renewer = bridge.handle().spawn(renew(
        t.clone(),
        holder,
        version.clone(),
        lease,
        renew_every,
        state.clone(),
    ));
    let held = Held {
        bridge: bridge.clone(),
        t: t.clone(),
        version,
        renewer,
    };
    Ok(TargetLock::new(t.describe(), Box::new(held)))
}

/// Renews the lease until refused (another process took over) or aborted.
async fn renew(
    t: Target,
    holder: LockHolder,
    version: Arc<Mutex<Version>>,
    lease: Duration,
    every: Duration,
    state: Arc<Lease>,
) {
    loop {
        tokio::time::sleep(every).await;
        let current = version.lock().expect("version").clone();
        let sent = Instant::now();
        match put_object(
            &t,
            LOCK_KEY,
            record(&holder, lease),
            PutMode::ReplaceIf(&current),
        )
        .await
        {
            Ok(v) => {
                *version.lock().expect("version") = v;
                state.granted(sent, lease);
            }
            Err(e) if super::is_refused(&e) => {
                state.lose();
                tracing::error!(target = %t.describe(), "lost the target lock: {e}; the next progress write of this run will be refused");
                return;
            }
            Err(e) => {
                tracing::warn!(target = %t.describe(), "renewing the target lock failed: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_holder_and_its_lease() {
        let h = LockHolder {
            host: "h".into(),
            pid: 7,
            since: "2026-01-01T00:00:00Z".into(),
        };
        let r: LockRecord = serde_json::from_slice(&record(&h, LEASE)).unwrap();
        assert_eq!(r.holder, h);
        assert!(r.expires_at_ms > now_ms() + 50_000);
    }
}
