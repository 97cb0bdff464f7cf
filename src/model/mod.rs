//! The change model every part of pgcdc speaks, at the lowest floor: the source produces it,
//! the batch layer turns it into Arrow, the sinks write it and the pipeline orders and
//! acknowledges it. It imports nothing else of pgcdc (only `serde` and `bytes`), so every
//! other folder may depend on it and it on none of them.
//!
//! * [`lsn`]: positions and times as PostgreSQL writes them ([`Lsn`], [`PgTimestamp`]).
//! * [`change`]: a committed transaction ([`TxnMeta`]), a row's operation ([`RowOp`]) and
//!   values ([`TupleValue`]), and one output row with its metadata ([`OutputRow`]).
//! * [`types`]: PostgreSQL types as pgcdc sees them ([`PgType`]) and their resolution from
//!   type OIDs ([`builtin`], [`resolve`]).
//! * [`schema`]: a table's columns and key ([`TableSchema`], [`ColumnSchema`], [`choose_key`]).
//!
//! The Arrow side of these types (`PgType::arrow_type`, `TableSchema::arrow_schema`) is
//! implemented by `crate::batch`, which owns the mapping of SPEC 5.4.

pub mod change;
pub mod lsn;
pub mod schema;
pub mod types;

pub use change::{OutputRow, RowOp, TupleValue, TxnMeta};
pub use lsn::{pg_ts_to_unix_micros, Lsn, PgTimestamp, PG_EPOCH_UNIX_SECS};
pub use schema::{choose_key, ColumnSchema, TableSchema};
pub use types::{builtin, builtin_type_name, resolve, CatalogType, PgType};
