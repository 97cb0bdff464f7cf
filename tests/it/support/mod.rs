//! The one helper tree of pgcdc's integration tests (`tests/it/main.rs` does `mod support;`).
//!
//! * [`pg()`]: one throwaway PostgreSQL cluster per test process (under cargo-nextest every
//!   test is its own process and so gets its own cluster), built on the library's
//!   `pgcdc::demo::cluster::LocalCluster` and configured for logical replication, TLS, SCRAM
//!   and MD5 roles. See `pg.rs`.
//! * [`fresh_db()`]: a new, uniquely named database in that cluster, with small helpers.
//! * [`Setup`]: a test's own database, publication, slot and output directory, its configs
//!   ([`config_toml`]), background runs ([`Running`]) and the comparison of the output with
//!   the source. See `setup.rs`.
//! * [`pgcdc()`]: a `Command` for the binary under test; [`write_config()`] for its TOML;
//!   [`pgcdc_c`], [`output_of`], [`ChildGuard`] and the output views [`stdout`], [`stderr`],
//!   [`describe`], [`assert_success`] in `process.rs`.
//! * [`read_parquet_with_python()`]: reads a Parquet output directory with pyarrow AND DuckDB
//!   (`tests/py/read_parquet.py`), the independent readers the output is judged by.
//! * [`moto()`]: a moto server (S3 / Kinesis / DMS compatible endpoint) per test process.
//!
//! Python comes from the project virtualenv that `make test` creates (`.venv`, or the
//! interpreter named by `PGCDC_PYTHON`). Tests never skip when a tool is missing: they panic
//! with an instruction, so a broken environment cannot look like a green run.
#![allow(dead_code, unused_imports)]

pub mod moto;
pub mod pg;
pub mod process;
pub mod py;
pub mod s3_proxy;
pub mod setup;
pub mod util;

pub use moto::{moto, MotoServer};
pub use pg::{fresh_db, pg, PgCluster, TestDb};
pub use process::{assert_success, describe, output_of, pgcdc_c, sigterm, stderr, stdout, ChildGuard};
pub use py::{python, read_parquet_glob_with_python, read_parquet_with_python, run_python_script};
pub use setup::{config_toml, parquet_files, report_table, Running, Setup};
pub use util::{pgcdc, repo_root, unique_suffix, write_config};
