//! Placeholder: being written.
#[derive(Debug)]
pub struct DecodeError;
pub struct Decoder;
