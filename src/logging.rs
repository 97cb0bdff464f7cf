//! Where log lines go: stderr, above the full load's progress bars while those are on
//! screen, so a log line never tears a bar apart.
//!
//! `cli` installs [`LogWriter`] as the `tracing` writer; `load::progress` registers its bars
//! with [`set_active_bars`] while it draws them. Both sit above this module; it imports
//! neither.

use std::io::Write;
use std::sync::Mutex;

use indicatif::MultiProgress;

/// The bars on screen, if any: log lines are written through them.
static ACTIVE_BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Registers the bars on screen (`Some`) or says there are none any more (`None`).
/// Called by the full load's progress display when it starts and when it is dropped.
pub fn set_active_bars(bars: Option<MultiProgress>) {
    *ACTIVE_BARS.lock().unwrap_or_else(|e| e.into_inner()) = bars;
}

/// Writes a log line to stderr, above the progress bars when they are shown.
pub fn write_log(buf: &[u8]) -> std::io::Result<()> {
    let bars = ACTIVE_BARS.lock().unwrap_or_else(|e| e.into_inner());
    match bars.as_ref() {
        Some(m) => m.suspend(|| std::io::stderr().write_all(buf)),
        None => std::io::stderr().write_all(buf),
    }
}

/// The `tracing` writer: stderr, through [`write_log`].
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_log(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
