//! Which pgoutput protocol to ask the server for, and the `START_REPLICATION` options that
//! say so.

/// The pgoutput protocol version for a server: the highest it supports
/// (`server_version` as in `server_version_num`, e.g. 150004).
pub fn protocol_version(server_version: u32) -> u32 {
    match server_version {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    }
}

/// The `START_REPLICATION` options for pgoutput: protocol `proto`, the one publication
/// (quoted), streaming of large transactions from protocol 2, and logical decoding
/// messages from PostgreSQL 14 (pgcdc's own until and heartbeat markers arrive that way).
pub fn pgoutput_options(
    proto: u32,
    publication: &str,
    server_version: u32,
) -> Vec<(&'static str, String)> {
    let mut options = vec![
        ("proto_version", proto.to_string()),
        (
            "publication_names",
            format!("\"{}\"", publication.replace('"', "\"\"")),
        ),
    ];
    if proto >= 2 {
        options.push(("streaming", "on".into()));
    }
    if server_version >= 140000 {
        options.push(("messages", "true".into()));
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_server_version() {
        assert_eq!(protocol_version(130010), 1);
        assert_eq!(protocol_version(150004), 3);
        assert_eq!(protocol_version(170000), 4);
        let o = pgoutput_options(1, "p\"q", 130010);
        assert_eq!(
            o,
            vec![
                ("proto_version", "1".into()),
                ("publication_names", "\"p\"\"q\"".into())
            ]
        );
        let o = pgoutput_options(3, "p", 150004);
        assert_eq!(
            o.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [
                "proto_version",
                "publication_names",
                "streaming",
                "messages"
            ]
        );
    }
}
