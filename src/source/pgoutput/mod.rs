//! `pgoutput` logical replication messages and their decoder.

mod decode;
#[cfg(test)]
pub(crate) mod test_wire;
mod messages;

pub use decode::{decode_message, DecodeError, Decoder};
pub use messages::*;
