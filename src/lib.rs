//! pgcdc: PostgreSQL logical replication (`pgoutput`) to Parquet and Kinesis.
//!
//! The folders follow the data's path: [`source`] reads PostgreSQL, [`model`] is the change
//! model everything speaks, [`rules`] reshapes a table as the `[[rule]]`s say (names, columns,
//! row filter), [`batch`] turns changes into Arrow record batches, [`sink`] writes
//! them out through [`storage`], [`state`] keeps durable progress, and [`pipeline`] orders,
//! acknowledges and checkpoints. [`cli`] only parses arguments and presents results.

pub mod admin;
pub mod aws;
pub mod batch;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dms;
pub mod error;
pub mod failpoint;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
pub mod storage;
pub mod time_fmt;
pub mod validate;
