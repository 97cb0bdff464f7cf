//! The PostgreSQL side: connection parameters, TLS, the replication protocol, pgoutput
//! decoding, and the catalog.

pub mod attributes;
pub mod catalog;
pub mod conninfo;
pub mod partitions;
pub mod copy;
pub mod pgoutput;
pub mod preflight;
pub mod publication;
pub mod quote;
pub mod replication;
pub mod row_filter;
pub mod rules;
pub mod slot_health;
pub mod sql;
pub mod tls;
