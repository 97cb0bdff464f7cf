//! `pgoutput` logical replication messages and their decoder.

mod decode;
mod messages;

pub use decode::{decode_message, DecodeError, Decoder};
pub use messages::*;
