//! pgcdc's integration tests: ONE test binary (linked once) with a module per area. Every
//! test runs the real `pgcdc` binary and/or the library against a throwaway PostgreSQL
//! cluster (see `support/pg.rs`), and judges the output with independent readers.
//!
//! Run one area with a name filter, e.g. `cargo nextest run harness::` or
//! `cargo test --test it -- cdc::`. Under cargo-nextest every test is its own process and so
//! gets its own cluster; under plain `cargo test` the tests of this binary share one.

mod support;

mod bad_inputs;
mod cdc;
mod commands;
mod copy_binary;
mod crash;
mod dead_letters;
mod dms_compare;
mod dms_csv;
mod dms_layout;
mod dms_plan;
mod errors;
mod glue;
mod glue_faults;
mod harness;
mod huge_values;
mod kinesis;
mod kinesis_kpl;
mod kinesis_load;
mod least_privilege;
mod load;
mod logs;
mod memory;
mod metrics;
mod multi_sink;
mod pgoutput_live;
mod publication_filters;
mod reconnect;
mod resync;
mod rules;
mod s3;
mod s3_crash;
mod s3_faults;
mod s3_fencing;
mod schema_changes;
mod table_changes;
mod target_safety;
mod types;
mod validate;
mod validate_bounded;
