//! A replication slot that is gone: dropped, or invalidated (`wal_status = lost`) because
//! the WAL it needed was removed (`max_slot_wal_keep_size`). Changes since the target's
//! position are lost with it, so `run` must not go on as if nothing happened, nor retry:
//! it stops with one error naming the slot and what happened, and the hint to recover with
//! `pgcdc run --resync` ([`crate::load::resync`]).
//!
//! Found at three moments, all mapped to the same errors here:
//! * before streaming ([`crate::source::preflight::check_streaming_start`]): a missing slot
//!   while the target holds changes ([`dropped`]), a slot with `wal_status = lost`
//!   ([`invalidated`]);
//! * by START_REPLICATION or the walsender while streaming ([`explain`], applied by `run`
//!   to the error it exits with);
//! * after a reconnect: the next CDC attempt runs the preflight again, and a gone slot is
//!   not an error of a lost source, so the reconnect loop ends at once.

use crate::error::Error;
use crate::model::Lsn;

/// What `--resync` does, for the hint of every lost-slot error.
pub const RESYNC_HINT: &str = "recover with `pgcdc run --resync -c FILE`: it creates a new slot, loads every table again from the new slot's snapshot into a new load generation (the old output stays until the new load is complete), then continues CDC from there";

/// The slot does not exist although the target holds changes up to `held`.
pub fn dropped(slot: &str, held: Lsn) -> Error {
    Error::runtime(format!(
        "replication slot `{slot}` does not exist, but the target already holds changes up to {held}: the slot was dropped, and the changes made since then are lost with it"
    ))
    .with_hint(RESYNC_HINT)
}

/// The slot is invalidated: the server removed WAL it still needed.
pub fn invalidated(slot: &str) -> Error {
    Error::runtime(format!(
        "replication slot `{slot}` is invalidated (wal_status = lost): the server removed WAL it still needed (max_slot_wal_keep_size), so changes since the target's position are lost"
    ))
    .with_hint(RESYNC_HINT)
}

/// What a server error says about the slot, by its text: `Some(true)` an invalidated slot,
/// `Some(false)` a missing one, `None` neither.
fn says_slot_gone(message: &str) -> Option<bool> {
    let m = message.to_ascii_lowercase();
    if m.contains("can no longer get changes from replication slot")
        || m.contains("has been invalidated")
        || (m.contains("replication slot") && m.contains("invalidated"))
    {
        Some(true)
    } else if m.contains("replication slot") && m.contains("does not exist") {
        Some(false)
    } else {
        None
    }
}

/// `e` unchanged, unless it says that `slot` is gone (START_REPLICATION on a dropped or
/// invalidated slot): then the clear error of [`dropped`] or [`invalidated`], keeping the
/// server's words. Called by `run` on the error it exits with.
pub fn explain(e: Error, slot: &str) -> Error {
    if e.hint.as_deref() == Some(RESYNC_HINT) {
        return e;
    }
    match says_slot_gone(&e.message) {
        Some(true) => {
            let mut out = invalidated(slot);
            out.message = format!("{} ({})", out.message, e.message);
            out
        }
        Some(false) if e.message.contains(slot) => Error::runtime(format!(
            "replication slot `{slot}` does not exist: it was dropped while pgcdc used it ({})",
            e.message
        ))
        .with_hint(RESYNC_HINT),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_gone_errors_are_recognised_by_the_server_words() {
        let inval = Error::runtime("cannot start replication from slot s: cannot read from logical replication slot \"s\" (SQLSTATE 55000); This slot has been invalidated because it exceeded the maximum reserved size.");
        let e = explain(inval, "s");
        assert!(
            e.message.starts_with("replication slot `s` is invalidated"),
            "{}",
            e.message
        );
        assert_eq!(e.hint.as_deref(), Some(RESYNC_HINT));
        let old = Error::runtime("can no longer get changes from replication slot \"s\"");
        assert!(explain(old, "s").message.contains("wal_status = lost"));
        let gone = Error::runtime("cannot start replication from slot s: replication slot \"s\" does not exist (SQLSTATE 42704)");
        let e = explain(gone, "s");
        assert!(
            e.message.contains("does not exist: it was dropped"),
            "{}",
            e.message
        );
        let other = explain(Error::runtime("connection reset"), "s");
        assert_eq!(other.message, "connection reset");
        assert!(other.hint.is_none());
        let d = dropped("s", Lsn(0x1000));
        assert!(d
            .message
            .contains("does not exist, but the target already holds changes up to 0/1000"));
        assert!(explain(d, "s")
            .message
            .starts_with("replication slot `s` does not exist, but"));
    }
}
