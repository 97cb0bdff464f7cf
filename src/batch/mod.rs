//! The change model's rows ([`crate::model::OutputRow`]) into Arrow record batches: the
//! PostgreSQL type mapping (SPEC 5.4) and per-table builders.
//!
//! * [`types`]: the Arrow type of each [`crate::model::PgType`] (SPEC 5.4), including the
//!   rule for values Arrow cannot hold natively (infinity, BC, `24:00:00`).
//! * [`text`]: parsers of PostgreSQL's text output (and the reverse formatters).
//! * [`mod@array`]: the array literal parser.
//! * [`schema`]: a table's Arrow schema with the metadata columns of SPEC 5.1.
//! * [`builder`]: [`TableBatchBuilder`], rows into record batches.
//! * [`display`]: [`cell_to_string`], canonical strings of cells for comparisons.

pub mod array;
mod binary_values;
pub mod builder;
mod columns;
pub mod display;
mod huge;
pub mod schema;
pub mod text;
pub mod types;

#[cfg(test)]
mod tests;

pub use binary_values::{copy_native, copy_select_expr, copy_select_expr_from, copy_value_text};
pub use builder::{TableBatchBuilder, ValueError, BATCH_BYTES};
pub use display::cell_to_string;
