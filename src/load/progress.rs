//! Full-load progress: bars per table and overall on a terminal (rows, bytes, rate, ETA),
//! plain log lines every few seconds otherwise. Log lines are written above the bars
//! (see [`crate::logging`]).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counters of one table, shared by its workers.
pub struct TableProgress {
    pub name: String,
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub total_bytes: u64,
    bar: Option<ProgressBar>,
    /// The overall bar and row count, shared by every table.
    overall: Option<ProgressBar>,
    overall_rows: Arc<AtomicU64>,
}

impl TableProgress {
    pub fn add(&self, rows: u64, bytes: u64) {
        crate::metrics::loaded(&self.name, rows, bytes);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(b.min(bar.length().unwrap_or(u64::MAX)));
            bar.set_message(format!("{} rows", self.rows.load(Ordering::Relaxed)));
        }
        if let Some(all) = &self.overall {
            all.inc(bytes.min(all.length().unwrap_or(u64::MAX).saturating_sub(all.position())));
            let total = self.overall_rows.fetch_add(rows, Ordering::Relaxed) + rows;
            all.set_message(format!("{total} rows"));
        }
    }
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.set_length(self.bytes.load(Ordering::Relaxed).max(1));
            bar.set_position(self.bytes.load(Ordering::Relaxed).max(1));
            bar.finish_with_message(format!("{} rows, done", self.rows.load(Ordering::Relaxed)));
        }
    }
}

pub struct LoadProgress {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    pub tables: Vec<Arc<TableProgress>>,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl LoadProgress {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn new(tables: &[(String, u64)]) -> LoadProgress {
        let multi = std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let style = ProgressStyle::with_template("{prefix:<32} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta:>4} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        let total: u64 = tables.iter().map(|(_, b)| *b).sum();
        let overall = multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total.max(1)));
            b.set_style(style.clone());
            b.set_prefix("all tables");
            b.set_message("0 rows");
            b
        });
        let overall_rows = Arc::new(AtomicU64::new(0));
        let tables = tables
            .iter()
            .map(|(name, bytes)| {
                let bar = multi.as_ref().map(|m| {
                    let b = m.add(ProgressBar::new((*bytes).max(1)));
                    b.set_style(style.clone());
                    b.set_prefix(name.clone());
                    b
                });
                crate::metrics::load_planned(name, *bytes);
                Arc::new(TableProgress {
                    name: name.clone(),
                    rows: AtomicU64::new(0),
                    bytes: AtomicU64::new(0),
                    total_bytes: *bytes,
                    bar,
                    overall: overall.clone(),
                    overall_rows: overall_rows.clone(),
                })
            })
            .collect();
        if let Some(m) = &multi {
            crate::logging::set_active_bars(Some(m.clone()));
        }
        LoadProgress { multi, overall, tables, started: Instant::now(), last_log: Mutex::new(Instant::now()) }
    }

    pub fn table(&self, name: &str) -> Arc<TableProgress> {
        self.tables.iter().find(|t| t.name == name).cloned().expect("planned table")
    }

    /// Logs a summary line at most every 5 s when there are no bars.
    pub fn tick(&self) {
        if self.multi.is_some() {
            return;
        }
        let mut last = self.last_log.lock().expect("not poisoned");
        if last.elapsed() < Duration::from_secs(5) {
            return;
        }
        *last = Instant::now();
        let rows: u64 = self.tables.iter().map(|t| t.rows.load(Ordering::Relaxed)).sum();
        let bytes: u64 = self.tables.iter().map(|t| t.bytes.load(Ordering::Relaxed)).sum();
        let total: u64 = self.tables.iter().map(|t| t.total_bytes).sum();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            rows,
            mib = bytes / (1 << 20),
            of_mib = total / (1 << 20),
            rows_per_sec = (rows as f64 / secs) as u64,
            "full load in progress"
        );
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows.load(Ordering::Relaxed)).sum()
    }
}

impl Drop for LoadProgress {
    fn drop(&mut self) {
        if let Some(all) = &self.overall {
            // Leaves the overall bar on screen as it ended (complete or not).
            all.abandon_with_message(format!("{} rows", self.total_rows()));
        }
        if self.multi.is_some() {
            crate::logging::set_active_bars(None);
        }
    }
}
