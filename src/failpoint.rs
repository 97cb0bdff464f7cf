//! Named crash points for tests: `PGCDC_FAILPOINTS=name[@n],...` makes the process kill
//! itself with SIGKILL the n-th time (default: first) it reaches `name`. With the variable
//! unset, [`hit`] is a relaxed load of a cached flag.
//!
//! The crash tests use them to stop pgcdc exactly inside the windows that random kills
//! rarely reach: between publishing files and writing the checkpoint, and so on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Points {
    armed: HashMap<String, u64>,
    counts: HashMap<String, AtomicU64>,
}

fn points() -> &'static Option<Points> {
    static POINTS: OnceLock<Option<Points>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let spec = std::env::var("PGCDC_FAILPOINTS").ok()?;
        let armed: HashMap<String, u64> = spec
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('@') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (s.to_string(), 1),
            })
            .collect();
        let counts = armed.keys().map(|k| (k.clone(), AtomicU64::new(0))).collect();
        Some(Points { armed, counts })
    })
}

/// Kills the process if the failpoint `name` is armed and due.
pub fn hit(name: &str) {
    let Some(p) = points() else { return };
    let (Some(due), Some(count)) = (p.armed.get(name), p.counts.get(name)) else { return };
    if count.fetch_add(1, Ordering::SeqCst) + 1 == *due {
        eprintln!("failpoint {name}: killing the process");
        // SAFETY: sending a signal to ourselves has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
