//! Shared harness for pgcdc's integration tests.
//!
//! Every `tests/*.rs` file does `mod common;` and gets:
//!
//! * [`pg()`]: one throwaway PostgreSQL cluster per test binary (per process: under
//!   cargo-nextest every test is its own process and so gets its own cluster), configured for
//!   logical replication, TLS, SCRAM and MD5 roles. See `pg.rs`.
//! * [`fresh_db()`]: a new, uniquely named database in that cluster, with small helpers.
//! * [`pgcdc()`]: a `Command` for the binary under test; [`write_config()`] for its TOML.
//! * [`read_parquet_with_python()`]: reads a Parquet output directory with pyarrow AND DuckDB
//!   (`tests/py/read_parquet.py`), the independent readers the output is judged by.
//! * [`moto()`]: a moto server (S3 / Kinesis / DMS compatible endpoint) per test binary.
//!
//! Python comes from the project virtualenv that `make test` creates (`.venv`, or the
//! interpreter named by `PGCDC_PYTHON`). Tests never skip when a tool is missing: they panic
//! with an instruction, so a broken environment cannot look like a green run.
#![allow(dead_code, unused_imports)]

pub mod moto;
pub mod pg;
pub mod py;
pub mod util;

pub use moto::{moto, MotoServer};
pub use pg::{fresh_db, pg, PgCluster, TestDb};
pub use py::{python, read_parquet_glob_with_python, read_parquet_with_python, run_python_script};
pub use util::{pgcdc, repo_root, unique_suffix, write_config};
