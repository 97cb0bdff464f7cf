//! The walsender client: a `replication=database` connection speaking the streaming
//! replication protocol on `postgres-protocol` + tokio.

mod conn;
mod stream;

pub use conn::{ReplicationConn, SlotCreated, SnapshotAction, SystemInfo};
pub use stream::{ReplicationStream, StreamEvent};
