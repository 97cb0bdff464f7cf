//! Reading the target back: the SPEC 5.1 materialisation rule and comparison with the
//! source. `pgcdc validate` (SPEC 6), the demo and the tests are built on it.
//!
//! The source side is read through the output's type mapping ([`canonical`]), the target
//! side materialised ([`materialize`], with [`identity`] for renamed and retyped columns),
//! and the two compared by the one comparer ([`compare`]); the demo and the tests compare a
//! table as it is now through [`current`]. `validate` itself is
//! orchestrated in [`run`]: `snapshot` takes the snapshot, `target_ready` waits for the
//! target (peeking at the slot with `peek`), [`table`] validates one table (in bounded
//! memory: `partitioned`, with `spill`, `packed` records, `packed_rule`, `target_scan`,
//! `target_records`, `source_rows` and `diff_parts`),
//! [`report`] holds what is reported.

pub mod canonical;
pub mod compare;
pub mod current;
mod dead_letters;
mod diff_parts;
pub mod identity;
pub mod materialize;
mod packed;
mod packed_rule;
mod partitioned;
mod peek;
pub mod report;
pub mod run;
mod snapshot;
pub mod source_rows;
mod spill;
pub mod table;
mod target_ready;
mod target_records;
mod target_scan;
mod waiting;
