//! The walsender client: a `replication=database` connection speaking the streaming
//! replication protocol on `postgres-protocol` + tokio, and the reader loop that feeds the
//! pipeline from it.

mod conn;
pub mod own_thread;
mod pgoutput_options;
pub mod reader;
mod stream;

pub use conn::{ReplicationConn, SlotCreated, SnapshotAction, SystemInfo};
pub use pgoutput_options::{pgoutput_options, protocol_version};
pub use reader::{ReaderEnd, SourceEvent};
pub use stream::{ReplicationStream, StreamEvent};
