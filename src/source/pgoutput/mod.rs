//! `pgoutput` logical replication messages and their decoder.

mod decode;
mod messages;

pub use decode::{DecodeError, Decoder};
pub use messages::*;
