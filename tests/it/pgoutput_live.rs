//! The pgoutput decoder against a real server, message type by message type.
//!
//! Every test opens its own walsender connection with pgcdc's replication client
//! (`pgcdc::source::replication`), creates a temporary pgoutput slot on it, makes changes
//! through ordinary SQL sessions, then runs START_REPLICATION on that connection and decodes
//! everything with [`Decoder`] until the server reports (in a keepalive) that it has sent all
//! WAL up to `pg_current_wal_insert_lsn()` taken after the changes. The assertions compare
//! the decoded content with what the SQL side knows: transaction ids from
//! `pg_current_xact_id()`, LSNs from `pg_current_wal_insert_lsn()` and
//! `pg_logical_emit_message()`, relation and type OIDs from the catalog, commit times from
//! `clock_timestamp()`, and the values written.
//!
//! The test cluster (tests/it/support/pg.rs) sets `logical_decoding_work_mem = 64kB`, so a
//! transaction of a few thousand rows is streamed (protocol 2+, `streaming 'on'`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use crate::support::{fresh_db, TestDb};
use pgcdc::model::{Lsn, PgTimestamp, PG_EPOCH_UNIX_SECS};
// The highest pgoutput protocol version the server speaks: pgcdc's one rule.
use pgcdc::pipeline::runner::protocol_version as max_proto;
use pgcdc::source::conninfo::ConnInfo;
use pgcdc::source::pgoutput::{Decoder, OldKind, PgOutputMessage as M, Relation};
use pgcdc::model::TupleValue;
use pgcdc::source::quote::quote_ident;
use pgcdc::source::replication::{ReplicationConn, SnapshotAction, StreamEvent};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One decoded message and the `wal_start` of the XLogData that carried it.
#[derive(Clone, Debug, PartialEq)]
struct Got {
    wal_start: Lsn,
    msg: M,
}

/// A walsender connection holding a temporary pgoutput slot (it disappears with the
/// connection, so tests leave no slot behind).
struct Slot {
    conn: ReplicationConn,
    name: String,
    db: TestDb,
}

impl Slot {
    async fn create(db: &TestDb, two_phase: bool) -> Slot {
        let info = ConnInfo::from_url(Some(&db.url)).expect("conninfo");
        let mut conn = ReplicationConn::connect(&info).await.expect("replication connection");
        let name = db.unique("slot");
        if two_phase {
            // PG15 has no SQL-function way to make a *temporary* two-phase slot usable by a
            // walsender; the replication command takes TWO_PHASE since PG15.
            conn.simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing', TWO_PHASE true)",
                quote_ident(&name)
            ))
            .await
            .expect("create two-phase slot");
            let tp = db
                .query_scalar(&format!(
                    "SELECT two_phase::text FROM pg_replication_slots WHERE slot_name = '{name}'"
                ))
                .await;
            assert_eq!(tp.as_deref(), Some("true"), "slot {name} must have two_phase enabled");
        } else {
            conn.create_slot(&name, true, SnapshotAction::NoExport)
                .await
                .expect("create slot");
        }
        Slot {
            conn,
            name,
            db: db.clone(),
        }
    }

    /// START_REPLICATION with `proto_version`, `publication_names` and `extra` options;
    /// decodes until a keepalive says the server has sent everything before `until`.
    async fn collect(self, proto: u32, publication: &str, extra: &[(&str, &str)], until: Lsn) -> Vec<Got> {
        let (_tx, rx) = tokio::sync::watch::channel(until);
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.run(proto, publication.to_string(), extra, rx, Default::default())
            .await
    }

    /// Like [`Slot::collect`] but started now, in a task, while the test still makes
    /// changes: `until` is set through the returned sender, and `seen` shows the tags decoded
    /// so far (see [`wait_for_tags`]).
    fn collect_live(self, proto: u32, publication: &str, extra: &[(&str, &str)]) -> Live {
        let (until, rx) = tokio::sync::watch::channel(Lsn(u64::MAX));
        let seen: Seen = Default::default();
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let task = tokio::spawn(self.run(proto, publication.to_string(), extra, rx, seen.clone()));
        Live { until, seen, task }
    }

    async fn run(
        self,
        proto: u32,
        publication: String,
        extra: Vec<(String, String)>,
        until: tokio::sync::watch::Receiver<Lsn>,
        seen: Seen,
    ) -> Vec<Got> {
        let mut opts: Vec<(&str, String)> = vec![
            ("proto_version", proto.to_string()),
            ("publication_names", quote_ident(&publication)),
        ];
        opts.extend(extra.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut stream = self
            .conn
            .start_replication(&self.name, Lsn::ZERO, &opts)
            .await
            .unwrap_or_else(|e| panic!("START_REPLICATION {opts:?}: {e:?}"));
        let mut decoder = Decoder::new(proto);
        let mut got: Vec<Got> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut last_end = Lsn::ZERO;
        loop {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the server to pass {} (last keepalive at {last_end}); decoded so far:\n{}",
                *until.borrow(),
                dump(&got)
            );
            let ev = match tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
                Err(_) => {
                    // Nothing for 2s: write a little WAL elsewhere so the server advances and
                    // sends a keepalive (a record that ends exactly on a page boundary leaves
                    // the send position 24 bytes short of the insert position), and report
                    // our position so the sender keeps talking.
                    nudge(&self.db).await;
                    stream
                        .send_status(last_end, Lsn::ZERO, Lsn::ZERO, false)
                        .await
                        .expect("status");
                    continue;
                }
                Ok(r) => r.expect("replication stream").expect("the server ended the stream"),
            };
            match ev {
                StreamEvent::XLogData { wal_start, data, .. } => {
                    let raw = data.clone();
                    let msg = decoder.decode(data).unwrap_or_else(|e| {
                        panic!("decode failed: {e}\nraw: {raw:02x?}\ndecoded before:\n{}", dump(&got))
                    });
                    seen.lock().unwrap().push(tag(&msg));
                    got.push(Got { wal_start, msg });
                }
                StreamEvent::Keepalive { wal_end, .. } => {
                    last_end = last_end.max(wal_end);
                    // Report write only: flush 0 leaves the slot where it is.
                    stream
                        .send_status(last_end, Lsn::ZERO, Lsn::ZERO, false)
                        .await
                        .expect("status");
                    if wal_end >= *until.borrow() {
                        break;
                    }
                }
            }
        }
        assert!(!decoder.in_stream(), "stopped inside a stream:\n{}", dump(&got));
        stream.close().await;
        eprintln!("proto {proto} {extra:?}:\n{}", dump(&got));
        got
    }
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

/// A [`Slot::collect_live`] in progress.
struct Live {
    until: tokio::sync::watch::Sender<Lsn>,
    seen: Seen,
    task: tokio::task::JoinHandle<Vec<Got>>,
}

impl Live {
    /// Waits (at most 60 s) until the decoded tags satisfy `cond`.
    async fn wait_for(&self, what: &str, cond: impl Fn(&[&str]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if cond(&self.seen.lock().unwrap()) {
                return;
            }
            assert!(!self.task.is_finished(), "the collector ended before {what}");
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; seen {} messages",
                self.seen.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self, until: Lsn) -> Vec<Got> {
        self.until.send(until).unwrap();
        match self.task.await {
            Ok(got) => got,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

fn count(tags: &[&str], tag: &str) -> usize {
    tags.iter().filter(|t| **t == tag).count()
}

/// A WAL record in another database: the slot's walsender reads it, decodes nothing.
async fn nudge(db: &TestDb) {
    let c = crate::support::pg::connect(&db.cluster.admin_url("postgres")).await;
    c.batch_execute("SELECT pg_logical_emit_message(false, 'pgcdc-nudge', '')")
        .await
        .expect("nudge");
}

/// The messages one per line (at most 80: the first and last 40).
fn dump(got: &[Got]) -> String {
    let line = |g: &Got| {
        let mut s = format!("  {:>12} {:?}", g.wal_start.to_string(), g.msg);
        s.truncate(300);
        s
    };
    if got.len() <= 80 {
        return got.iter().map(line).collect::<Vec<_>>().join("\n");
    }
    let mut lines: Vec<String> = got[..40].iter().map(line).collect();
    lines.push(format!("  ... {} more ...", got.len() - 80));
    lines.extend(got[got.len() - 40..].iter().map(line));
    lines.join("\n")
}

fn tag(m: &M) -> &'static str {
    match m {
        M::Begin { .. } => "B",
        M::Commit { .. } => "C",
        M::Origin { .. } => "O",
        M::Relation { .. } => "R",
        M::Type { .. } => "Y",
        M::Insert { .. } => "I",
        M::Update { .. } => "U",
        M::Delete { .. } => "D",
        M::Truncate { .. } => "T",
        M::Message { .. } => "M",
        M::StreamStart { .. } => "S",
        M::StreamStop => "E",
        M::StreamCommit { .. } => "c",
        M::StreamAbort { .. } => "A",
        M::BeginPrepare { .. } => "b",
        M::Prepare { .. } => "P",
        M::CommitPrepared { .. } => "K",
        M::RollbackPrepared { .. } => "r",
        M::StreamPrepare { .. } => "p",
    }
}

/// The tags of all messages, space separated.
fn tags(got: &[Got]) -> String {
    got.iter().map(|g| tag(&g.msg)).collect::<Vec<_>>().join(" ")
}

/// Tags with each run of consecutive stream segments (StreamStart ... StreamStop, any
/// number) collapsed to `[S]`, e.g. `[S] B R I C [S] c`.
fn stream_shape(got: &[Got]) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut inside = false;
    for g in got {
        match &g.msg {
            M::StreamStart { .. } => {
                inside = true;
                if out.last() != Some(&"[S]") {
                    out.push("[S]");
                }
            }
            M::StreamStop => inside = false,
            _ if inside => {}
            m => out.push(tag(m)),
        }
    }
    out.join(" ")
}

fn t(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

const N: TupleValue = TupleValue::Null;
const U: TupleValue = TupleValue::Unchanged;

/// First column of the first row of the last statement in `sql`, run in session `c`.
async fn q(c: &tokio_postgres::Client, sql: &str) -> String {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", crate::support::pg::describe_error(&e)));
    let mut last = None;
    for m in msgs {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            last = Some(r.get(0).map(str::to_string));
        }
    }
    last.flatten().unwrap_or_else(|| panic!("no value from {sql}"))
}

async fn x(c: &tokio_postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", crate::support::pg::describe_error(&e)));
}

async fn insert_lsn(c: &tokio_postgres::Client) -> Lsn {
    q(c, "SELECT pg_current_wal_insert_lsn()::text").await.parse().unwrap()
}

/// The current transaction's id as pgoutput sends it (the low 32 bits).
async fn xid(c: &tokio_postgres::Client) -> u32 {
    let full: u64 = q(c, "SELECT pg_current_xact_id()::text").await.parse().unwrap();
    full as u32
}

/// `clock_timestamp()` in microseconds since 2000-01-01 UTC.
async fn now_pg(c: &tokio_postgres::Client) -> PgTimestamp {
    q(
        c,
        &format!("SELECT ((extract(epoch FROM clock_timestamp()) - {PG_EPOCH_UNIX_SECS}) * 1000000)::bigint::text"),
    )
    .await
    .parse()
    .unwrap()
}

async fn oid(c: &tokio_postgres::Client, expr: &str) -> u32 {
    q(c, &format!("SELECT ({expr})::oid::text")).await.parse().unwrap()
}

/// Asserts that messages `b..=c` form one complete transaction: Begin first, Commit last,
/// final_lsn == commit_lsn < end_lsn, every LSN inside the window `(before, after]`, the
/// XLogData positions non-decreasing and the Commit carried at its end LSN, the xid and the
/// commit time as expected. Returns (commit_lsn, end_lsn).
fn check_txn(got: &[Got], b: usize, c: usize, want_xid: u32, before: Lsn, after: Lsn, ts: (i64, i64)) -> (Lsn, Lsn) {
    let M::Begin {
        final_lsn,
        commit_ts,
        xid,
    } = got[b].msg.clone()
    else {
        panic!("message {b} is not a Begin:\n{}", dump(got))
    };
    let M::Commit {
        flags,
        commit_lsn,
        end_lsn,
        commit_ts: cts,
    } = got[c].msg.clone()
    else {
        panic!("message {c} is not a Commit:\n{}", dump(got))
    };
    assert_eq!(xid, want_xid, "Begin xid");
    assert_eq!(flags, 0, "Commit flags");
    assert_eq!(final_lsn, commit_lsn, "Begin.final_lsn must be the Commit's commit_lsn");
    assert!(commit_lsn < end_lsn, "commit_lsn {commit_lsn} < end_lsn {end_lsn}");
    assert!(
        before < commit_lsn && end_lsn <= after,
        "{before} < {commit_lsn}..{end_lsn} <= {after}"
    );
    assert_eq!(commit_ts, cts, "Begin and Commit carry the same commit time");
    assert!(
        ts.0 <= commit_ts && commit_ts <= ts.1,
        "commit time {commit_ts} not within the SQL clock window {ts:?}"
    );
    assert_eq!(
        got[c].wal_start, end_lsn,
        "the Commit is sent at the transaction's end LSN"
    );
    // The walsender sends 0/0 as the position of every message that is not the last one
    // written for a WAL record (Relation, Type, and Begin when an Origin follows).
    let mut prev = before;
    for (i, g) in got.iter().enumerate().take(c).skip(b) {
        if g.wal_start == Lsn::ZERO {
            assert!(
                matches!(g.msg, M::Relation { .. } | M::Type { .. } | M::Begin { .. }),
                "message {i} has no position:\n{}",
                dump(got)
            );
        } else {
            assert!(
                g.wal_start >= prev && g.wal_start <= commit_lsn,
                "message {i} at {} out of order:\n{}",
                g.wal_start,
                dump(got)
            );
            prev = g.wal_start;
        }
        if b < i {
            assert!(g.msg.stream_xid().is_none(), "no xid outside a stream");
        }
    }
    (commit_lsn, end_lsn)
}

fn relation(got: &Got) -> &Relation {
    match &got.msg {
        M::Relation { relation, .. } => relation,
        m => panic!("expected a Relation, got {m:?}"),
    }
}

/// (flags, name, type oid, typmod) of every column.
fn cols(r: &Relation) -> Vec<(u8, &str, u32, i32)> {
    r.columns
        .iter()
        .map(|c| (c.flags, c.name.as_str(), c.type_oid, c.type_modifier))
        .collect()
}

fn inserted_id(m: &M) -> Option<i64> {
    match m {
        M::Insert { new, .. } => match &new[0] {
            TupleValue::Text(b) => Some(std::str::from_utf8(b).unwrap().parse().unwrap()),
            v => panic!("id is {v:?}"),
        },
        _ => None,
    }
}

// Built-in type OIDs.
const BOOL: u32 = 16;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const NUMERIC: u32 = 1700;
const VARCHAR: u32 = 1043;

// ---------------------------------------------------------------------------------------------
// Begin / Commit / Relation / Type / Insert
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_commit_relation_type_and_insert() {
    let db = fresh_db("pgo_basic").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TABLE t (
             id int PRIMARY KEY,
             gone int,
             name varchar(10) NOT NULL,
             price numeric(10,2),
             note text,
             m mood,
             p posint,
             moods mood[],
             twice int GENERATED ALWAYS AS (id * 2) STORED
         );
         ALTER TABLE t DROP COLUMN gone;
         CREATE TABLE unpublished (id int);
         CREATE PUBLICATION {publication} FOR TABLE t;"
    ))
    .await;
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;
    let relid = oid(&c, "'t'::regclass").await;
    let mood = oid(&c, "'mood'::regtype").await;
    let moods = oid(&c, "'mood[]'::regtype").await;
    let posint = oid(&c, "'posint'::regtype").await;

    let lsn0 = insert_lsn(&c).await;
    let ts0 = now_pg(&c).await;
    x(&c, "BEGIN").await;
    let xid1 = xid(&c).await;
    x(
        &c,
        "INSERT INTO t (id, name, price, note, m, p, moods) VALUES (1, 'abc', 12.5, NULL, 'happy', 7, '{sad,ok}')",
    )
    .await;
    x(&c, "COMMIT").await;
    let lsn1 = insert_lsn(&c).await;
    let ts1 = now_pg(&c).await;

    // A transaction touching only an unpublished table: PG15 sends nothing at all for it.
    x(&c, "INSERT INTO unpublished VALUES (1)").await;

    x(&c, "BEGIN").await;
    let xid2 = xid(&c).await;
    x(&c, "INSERT INTO t (id, name, note) VALUES (2, 'ü€ß''\"\\x', E'line1\\nline2\\ttab'); INSERT INTO t (id, name, price) VALUES (3, '', -0.01)").await;
    x(&c, "COMMIT").await;
    let lsn2 = insert_lsn(&c).await;
    let ts2 = now_pg(&c).await;

    // A schema change: the next change re-sends Type and Relation messages.
    x(&c, "ALTER TABLE t ADD COLUMN extra bool DEFAULT true").await;
    let lsn3 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let xid3 = xid(&c).await;
    x(&c, "INSERT INTO t (id, name) VALUES (4, 'd'); COMMIT").await;
    let until = insert_lsn(&c).await;
    let ts3 = now_pg(&c).await;

    let got = slot.collect(proto, &publication, &[], until).await;
    assert_eq!(tags(&got), "B Y Y Y R I C B I I C B Y Y Y R I C", "{}", dump(&got));

    check_txn(&got, 0, 6, xid1, lsn0, lsn1, (ts0, ts1));
    check_txn(&got, 7, 10, xid2, lsn1, lsn2, (ts1, ts2));
    check_txn(&got, 11, 17, xid3, lsn3, until, (ts2, ts3));

    // Type messages, in column order, for every column of a non-built-in type. For the
    // domain PG15 sends the domain's OID with the *base* type's namespace and name, and
    // pg_catalog is sent as the empty string.
    let types: Vec<M> = got[1..4].iter().map(|g| g.msg.clone()).collect();
    let ty = |oid: u32, ns: &str, name: &str| M::Type {
        xid: None,
        oid,
        namespace: ns.into(),
        name: name.into(),
    };
    assert_eq!(
        types,
        vec![
            ty(mood, "public", "mood"),
            ty(posint, "", "int4"),
            ty(moods, "public", "_mood")
        ]
    );
    assert_eq!(got[12..15].iter().map(|g| g.msg.clone()).collect::<Vec<_>>(), types);

    // Relation: no dropped or generated column; the key column flagged; type OIDs and
    // modifiers (varchar(10) -> 14, numeric(10,2) -> (10 << 16 | 2) + 4).
    let r = relation(&got[4]);
    assert_eq!(
        (r.relid, r.namespace.as_str(), r.name.as_str(), r.replica_identity),
        (relid, "public", "t", b'd')
    );
    let want_cols = vec![
        (1, "id", INT4, -1),
        (0, "name", VARCHAR, 14),
        (0, "price", NUMERIC, (10 << 16 | 2) + 4),
        (0, "note", TEXT, -1),
        (0, "m", mood, -1),
        (0, "p", posint, -1),
        (0, "moods", moods, -1),
    ];
    assert_eq!(cols(r), want_cols);
    assert!(r.columns[0].is_key() && !r.columns[1].is_key());
    let r2 = relation(&got[15]);
    let mut want2 = want_cols.clone();
    want2.push((0, "extra", BOOL, -1));
    assert_eq!((r2.relid, cols(r2)), (relid, want2));

    let ins = |i: usize| match &got[i].msg {
        M::Insert { xid, relid, new } => {
            assert_eq!(*xid, None);
            (*relid, new.clone())
        }
        m => panic!("expected an Insert at {i}, got {m:?}"),
    };
    assert_eq!(
        ins(5),
        (
            relid,
            vec![t("1"), t("abc"), t("12.50"), N, t("happy"), t("7"), t("{sad,ok}")]
        )
    );
    assert_eq!(
        ins(8),
        (relid, vec![t("2"), t("ü€ß'\"\\x"), N, t("line1\nline2\ttab"), N, N, N])
    );
    assert_eq!(ins(9), (relid, vec![t("3"), t(""), t("-0.01"), N, N, N, N]));
    assert_eq!(ins(16), (relid, vec![t("4"), t("d"), N, N, N, N, N, t("t")]));
}

// ---------------------------------------------------------------------------------------------
// Update / Delete: old key ('K'), old row ('O'), unchanged TOAST ('u')
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_old_tuples_and_unchanged_toast() {
    let db = fresh_db("pgo_upd").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    // `big`: 9600 bytes of hex digits, stored out of line and uncompressed (STORAGE EXTERNAL).
    db.exec(&format!(
        "CREATE TABLE kd (a int, b text, v text, PRIMARY KEY (a, b));
         CREATE TABLE tf (id int, v text, big text);
         ALTER TABLE tf REPLICA IDENTITY FULL;
         ALTER TABLE tf ALTER COLUMN big SET STORAGE EXTERNAL;
         CREATE TABLE tt (id int PRIMARY KEY, small int, big text);
         ALTER TABLE tt ALTER COLUMN big SET STORAGE EXTERNAL;
         CREATE TABLE bigval AS SELECT string_agg(md5(i::text), '' ORDER BY i) AS v FROM generate_series(1, 300) i;
         INSERT INTO kd VALUES (1, 'x', 'v1'), (2, 'y', 'v2');
         INSERT INTO tf SELECT 1, 'f1', v FROM bigval;
         INSERT INTO tt SELECT 1, 0, v FROM bigval;
         CREATE PUBLICATION {publication} FOR TABLE kd, tf, tt;"
    ))
    .await;
    let big = db.query_scalar("SELECT v FROM bigval").await.unwrap();
    assert_eq!(big.len(), 9600);
    for table in ["tt", "tf"] {
        let toast = db
            .query_scalar(&format!(
                "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = '{table}'::regclass"
            ))
            .await
            .unwrap();
        assert!(
            db.count(&toast).await >= 4,
            "{table}.big must be stored out of line, in {toast}"
        );
    }
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;
    let (kd, tf, tt) = (
        oid(&c, "'kd'::regclass").await,
        oid(&c, "'tf'::regclass").await,
        oid(&c, "'tt'::regclass").await,
    );

    let lsn0 = insert_lsn(&c).await;
    let ts0 = now_pg(&c).await;
    x(&c, "BEGIN").await;
    let xid1 = xid(&c).await;
    x(
        &c,
        "UPDATE kd SET v = 'v1b' WHERE a = 1;
         UPDATE kd SET b = 'x2' WHERE a = 1;
         UPDATE kd SET v = NULL WHERE a = 2;
         DELETE FROM kd WHERE a = 2;
         UPDATE tf SET v = 'f2';
         DELETE FROM tf;
         UPDATE tt SET small = 1;
         UPDATE tt SET big = big || 'z';
         DELETE FROM tt;
         COMMIT",
    )
    .await;
    let until = insert_lsn(&c).await;
    let ts1 = now_pg(&c).await;

    let got = slot.collect(proto, &publication, &[], until).await;
    assert_eq!(tags(&got), "B R U U U D R U D R U U D C", "{}", dump(&got));
    check_txn(&got, 0, 13, xid1, lsn0, until, (ts0, ts1));

    let rk = relation(&got[1]);
    assert_eq!((rk.relid, rk.replica_identity), (kd, b'd'));
    assert_eq!(
        cols(rk),
        vec![(1, "a", INT4, -1), (1, "b", TEXT, -1), (0, "v", TEXT, -1)]
    );
    let rf = relation(&got[6]);
    assert_eq!((rf.relid, rf.replica_identity), (tf, b'f'));
    // REPLICA IDENTITY FULL: every column is flagged as part of the identity.
    assert_eq!(
        cols(rf),
        vec![(1, "id", INT4, -1), (1, "v", TEXT, -1), (1, "big", TEXT, -1)]
    );
    let rt = relation(&got[9]);
    assert_eq!((rt.relid, rt.replica_identity), (tt, b'd'));
    assert_eq!(
        cols(rt),
        vec![(1, "id", INT4, -1), (0, "small", INT4, -1), (0, "big", TEXT, -1)]
    );

    let upd = |i: usize| match &got[i].msg {
        M::Update {
            xid: None,
            relid,
            old,
            new,
        } => (*relid, old.clone(), new.clone()),
        m => panic!("expected an Update at {i}, got {m:?}"),
    };
    let del = |i: usize| match &got[i].msg {
        M::Delete { xid: None, relid, old } => (*relid, old.clone()),
        m => panic!("expected a Delete at {i}, got {m:?}"),
    };
    // Key unchanged: no old tuple.
    assert_eq!(upd(2), (kd, None, vec![t("1"), t("x"), t("v1b")]));
    // Key changed: 'K' with the old key, the other columns null.
    assert_eq!(
        upd(3),
        (
            kd,
            Some((OldKind::Key, vec![t("1"), t("x"), N])),
            vec![t("1"), t("x2"), t("v1b")]
        )
    );
    assert_eq!(upd(4), (kd, None, vec![t("2"), t("y"), N]));
    assert_eq!(del(5), (kd, (OldKind::Key, vec![t("2"), t("y"), N])));
    // FULL: 'O' with the whole old row, its TOASTed value inlined; the new row leaves the
    // unchanged TOASTed value out ('u').
    assert_eq!(
        upd(7),
        (
            tf,
            Some((OldKind::Full, vec![t("1"), t("f1"), t(&big)])),
            vec![t("1"), t("f2"), U]
        )
    );
    assert_eq!(del(8), (tf, (OldKind::Full, vec![t("1"), t("f2"), t(&big)])));
    // Default identity: unchanged TOAST is 'u'; a changed TOASTed value is sent whole.
    assert_eq!(upd(10), (tt, None, vec![t("1"), t("1"), U]));
    assert_eq!(upd(11), (tt, None, vec![t("1"), t("1"), t(&format!("{big}z"))]));
    assert_eq!(del(12), (tt, (OldKind::Key, vec![t("1"), N, N])));
}

// ---------------------------------------------------------------------------------------------
// Truncate
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_relids_and_option_bits() {
    let db = fresh_db("pgo_trunc").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE ta (id serial PRIMARY KEY);
         CREATE TABLE tb (id int PRIMARY KEY);
         CREATE TABLE tp (id int PRIMARY KEY);
         CREATE TABLE tc (id int PRIMARY KEY, p int REFERENCES tp);
         CREATE TABLE unpub (id int);
         CREATE PUBLICATION {publication} FOR TABLE ta, tb, tp, tc;"
    ))
    .await;
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;
    let ta = oid(&c, "'ta'::regclass").await;
    let tb = oid(&c, "'tb'::regclass").await;
    let tp = oid(&c, "'tp'::regclass").await;
    let tc = oid(&c, "'tc'::regclass").await;

    let mut xids = Vec::new();
    let mut lsns = vec![insert_lsn(&c).await];
    for sql in [
        "TRUNCATE ta, tb, unpub",
        "TRUNCATE tp CASCADE",
        "TRUNCATE ta RESTART IDENTITY",
        "TRUNCATE tb, tp RESTART IDENTITY CASCADE",
    ] {
        x(&c, "BEGIN").await;
        xids.push(xid(&c).await);
        x(&c, sql).await;
        x(&c, "COMMIT").await;
        lsns.push(insert_lsn(&c).await);
    }
    let until = *lsns.last().unwrap();
    let got = slot.collect(proto, &publication, &[], until).await;
    // Truncating gives each table a new relfilenode, which invalidates its cached
    // description: every truncated table is described again before its Truncate.
    assert_eq!(tags(&got), "B R R T C B R R T C B R T C B R R R T C", "{}", dump(&got));
    for (k, (b, cm)) in [(0, 4), (5, 9), (10, 13), (14, 19)].into_iter().enumerate() {
        check_txn(&got, b, cm, xids[k], lsns[k], lsns[k + 1], (i64::MIN, i64::MAX));
    }
    let truncs: Vec<(u8, Vec<u32>)> = got
        .iter()
        .filter_map(|g| match &g.msg {
            M::Truncate {
                xid: None,
                options,
                relids,
            } => {
                let mut r = relids.clone();
                r.sort();
                Some((*options, r))
            }
            M::Truncate { .. } => panic!("xid outside a stream"),
            _ => None,
        })
        .collect();
    let sorted = |mut v: Vec<u32>| {
        v.sort();
        v
    };
    assert_eq!(
        truncs,
        vec![
            (0, sorted(vec![ta, tb])),     // the unpublished table is left out
            (1, sorted(vec![tp, tc])),     // CASCADE (bit 1) reaches the referencing table
            (2, vec![ta]),                 // RESTART IDENTITY (bit 2)
            (3, sorted(vec![tb, tp, tc])), // both
        ]
    );
    // The Relations of each transaction are exactly the truncated tables.
    let mut described = Vec::new();
    for g in &got {
        match &g.msg {
            M::Begin { .. } => described.clear(),
            M::Relation { relation, .. } => described.push(relation.relid),
            M::Truncate { relids, .. } => assert_eq!(sorted(described.clone()), sorted(relids.clone())),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logical decoding messages
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_messages_transactional_and_not() {
    let db = fresh_db("pgo_msg").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION {publication} FOR TABLE t;"
    ))
    .await;
    let slot = Slot::create(&db, false).await;
    let slot_without = Slot::create(&db, false).await;
    let c = db.client().await;
    let relid = oid(&c, "'t'::regclass").await;
    let emit = |tx: bool, prefix: &str, content: &str| {
        format!("SELECT pg_logical_emit_message({tx}, '{prefix}', {content})::text")
    };

    let lsn0 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let xid1 = xid(&c).await;
    x(&c, "INSERT INTO t VALUES (1)").await;
    let m_tx: Lsn = q(&c, &emit(true, "pfx", "'hello'")).await.parse().unwrap();
    let m_nt: Lsn = q(&c, &emit(false, "nt", "'\\x00ff0a'::bytea")).await.parse().unwrap();
    x(&c, "COMMIT").await;
    let lsn1 = insert_lsn(&c).await;
    // A non-transactional message survives the rollback of its transaction; a
    // transactional one does not.
    x(&c, "BEGIN").await;
    let m_kept: Lsn = q(&c, &emit(false, "nt2", "'kept'")).await.parse().unwrap();
    q(&c, &emit(true, "lost", "'x'")).await;
    x(&c, "ROLLBACK").await;
    // A transaction of nothing but a transactional message.
    let lsn2 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let xid3 = xid(&c).await;
    let m_alone: Lsn = q(&c, &emit(true, "alone", "''")).await.parse().unwrap();
    x(&c, "COMMIT").await;
    let until = insert_lsn(&c).await;

    let got = slot.collect(proto, &publication, &[("messages", "true")], until).await;
    // The non-transactional message is sent when decoded, before the transaction it was
    // emitted in (which is sent at its commit).
    assert_eq!(tags(&got), "M B R I M C M B M C", "{}", dump(&got));
    check_txn(&got, 1, 5, xid1, lsn0, lsn1, (i64::MIN, i64::MAX));
    check_txn(&got, 7, 9, xid3, lsn2, until, (i64::MIN, i64::MAX));
    let msg = |i: usize| match &got[i].msg {
        M::Message {
            xid: None,
            flags,
            lsn,
            prefix,
            content,
        } => (*flags, *lsn, prefix.as_str(), content.to_vec()),
        m => panic!("expected a Message at {i}, got {m:?}"),
    };
    // The message LSN is the one pg_logical_emit_message returned (the end of its record).
    assert_eq!(msg(0), (0, m_nt, "nt", vec![0x00, 0xff, 0x0a]));
    assert_eq!(msg(4), (1, m_tx, "pfx", b"hello".to_vec()));
    assert_eq!(msg(6), (0, m_kept, "nt2", b"kept".to_vec()));
    assert_eq!(msg(8), (1, m_alone, "alone", vec![]));
    assert!(matches!(&got[3].msg, M::Insert { relid: r, .. } if *r == relid));

    // Without the `messages` option there are none, and the message-only transaction is
    // skipped as empty.
    let got = slot_without.collect(proto, &publication, &[], until).await;
    assert_eq!(tags(&got), "B R I C", "{}", dump(&got));
}

// ---------------------------------------------------------------------------------------------
// Origin
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_origin_follows_begin() {
    let db = fresh_db("pgo_origin").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION {publication} FOR TABLE t;"
    ))
    .await;
    let slot = Slot::create(&db, false).await;
    let slot_none = Slot::create(&db, false).await;
    let origin = db.unique("origin");
    let c = db.client().await;

    q(&c, &format!("SELECT pg_replication_origin_create('{origin}')::text")).await;
    x(&c, &format!("SELECT pg_replication_origin_session_setup('{origin}')")).await;
    let lsn0 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let xid1 = xid(&c).await;
    x(&c, "SELECT pg_replication_origin_xact_setup('0/1', '2001-02-03 04:05:06.789+00'); INSERT INTO t VALUES (1); COMMIT").await;
    let lsn1 = insert_lsn(&c).await;
    x(&c, "SELECT pg_replication_origin_session_reset()").await;
    let ts1 = now_pg(&c).await;
    x(&c, "BEGIN").await;
    let xid2 = xid(&c).await;
    x(&c, "INSERT INTO t VALUES (2); COMMIT").await;
    let until = insert_lsn(&c).await;
    let ts2 = now_pg(&c).await;
    x(&c, &format!("SELECT pg_replication_origin_drop('{origin}')")).await;

    let got = slot.collect(proto, &publication, &[], until).await;
    assert_eq!(tags(&got), "B O R I C B I C", "{}", dump(&got));
    // The commit time of a replayed transaction is the origin's timestamp:
    // 2001-02-03 04:05:06.789 UTC is 399 days + 14706.789 s after 2000-01-01.
    let origin_ts: PgTimestamp = (399 * 86_400 + 14_706) * 1_000_000 + 789_000;
    check_txn(&got, 0, 4, xid1, lsn0, lsn1, (origin_ts, origin_ts));
    check_txn(&got, 5, 7, xid2, lsn1, until, (ts1, ts2));
    // Origin: the origin's commit LSN as given to pg_replication_origin_xact_setup.
    assert_eq!(
        got[1].msg,
        M::Origin {
            commit_lsn: Lsn(1),
            name: origin.clone()
        }
    );

    // `origin 'none'` (PostgreSQL 16+) drops the replayed transaction entirely; PG15's
    // pgoutput does not know the option.
    if db.cluster.version_num() >= 160000 {
        let got = slot_none
            .collect(proto, &publication, &[("origin", "none")], until)
            .await;
        assert_eq!(tags(&got), "B R I C", "{}", dump(&got));
        check_txn(&got, 0, 3, xid2, lsn1, until, (ts1, ts2));
    } else {
        let opts = [
            ("proto_version", proto.to_string()),
            ("publication_names", quote_ident(&publication)),
            ("origin", "none".into()),
        ];
        let err = match slot_none
            .conn
            .start_replication(&slot_none.name, Lsn::ZERO, &opts)
            .await
        {
            Ok(_) => panic!("PG15 accepted the origin option"),
            Err(e) => format!("{e:?}"),
        };
        assert!(err.contains("unrecognized pgoutput option: origin"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol versions 1, 2 and the highest; binary values
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_versions_decode_the_same_changes_alike_and_binary_values() {
    let db = fresh_db("pgo_proto").await;
    let max = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, n bigint, f float8, b bool, s text, v varchar(5));
         CREATE PUBLICATION {publication} FOR TABLE t;"
    ))
    .await;
    let mut slots = Vec::new();
    for _ in 0..4 {
        slots.push(Slot::create(&db, false).await);
    }
    let c = db.client().await;
    // One transaction per statement (a multi-statement simple query would be one).
    for sql in [
        "INSERT INTO t VALUES (1, -9000000000, 1.5, true, 'héllo', 'ab'), (2, NULL, NULL, NULL, NULL, NULL)",
        "UPDATE t SET id = 3, s = 'moved' WHERE id = 1",
        "DELETE FROM t WHERE id = 2",
        "TRUNCATE t",
        "SELECT pg_logical_emit_message(false, 'p', 'non-tx')",
        "BEGIN; INSERT INTO t VALUES (4, 4, 4, false, '', 'x'); SELECT pg_logical_emit_message(true, 'p', 'tx'); COMMIT",
    ] {
        x(&c, sql).await;
    }
    let until = insert_lsn(&c).await;

    let mut slots = slots.into_iter();
    let msgs = [("messages", "true")];
    let v1 = slots.next().unwrap().collect(1, &publication, &msgs, until).await;
    let v2 = slots.next().unwrap().collect(2, &publication, &msgs, until).await;
    let vmax = slots.next().unwrap().collect(max, &publication, &msgs, until).await;
    // TRUNCATE gives the table a new relfilenode: the Relation is sent again, both inside
    // the truncating transaction and in the next one.
    assert_eq!(tags(&v1), "B R I I C B U C B D C B R T C M B R I M C", "{}", dump(&v1));
    assert_eq!(v1, v2, "protocol 1 and 2 decode differently");
    assert_eq!(v1, vmax, "protocol 1 and {max} decode differently");
    let M::Update {
        old: Some((OldKind::Key, old)),
        new,
        ..
    } = &v1[6].msg
    else {
        panic!("{:?}", v1[6])
    };
    assert_eq!(old, &vec![t("1"), N, N, N, N, N]);
    assert_eq!(
        new,
        &vec![t("3"), t("-9000000000"), t("1.5"), t("t"), t("moved"), t("ab")]
    );

    // binary 'true': values in the types' send format ('b').
    let bin = slots
        .next()
        .unwrap()
        .collect(max, &publication, &[("binary", "true")], until)
        .await;
    assert_eq!(tags(&bin), "B R I I C B U C B D C B R T C B R I C", "{}", dump(&bin));
    let b = |bytes: &[u8]| TupleValue::Binary(Bytes::copy_from_slice(bytes));
    let M::Insert { new, .. } = &bin[2].msg else { panic!() };
    assert_eq!(
        new,
        &vec![
            b(&1i32.to_be_bytes()),
            b(&(-9_000_000_000i64).to_be_bytes()),
            b(&1.5f64.to_bits().to_be_bytes()),
            b(&[1]),
            b("héllo".as_bytes()),
            b(b"ab"),
        ]
    );
    let M::Insert { new, .. } = &bin[3].msg else { panic!() };
    assert_eq!(new, &vec![b(&2i32.to_be_bytes()), N, N, N, N, N]);
    assert_eq!(
        relation(&bin[1]),
        relation(&v1[1]),
        "Relation does not depend on binary"
    );
}

// ---------------------------------------------------------------------------------------------
// Streaming (protocol 2+)
// ---------------------------------------------------------------------------------------------

const BIG_ROWS: i64 = 3000;

fn big_insert(from: i64, to: i64) -> String {
    format!("INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series({from}, {to}) g")
}

async fn big_table(db: &TestDb, publication: &str) {
    db.exec(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, pad text); CREATE PUBLICATION {publication} FOR TABLE big;"
    ))
    .await;
}

/// Checks the stream segments of one transaction: every StreamStart names `xid`, only the
/// first is `first_segment`, there are at least `min_segments`, and every message inside
/// carries an xid from `allowed` (Relation or Insert only). Returns the inserted ids in
/// order with the xid each carried.
fn stream_segments(got: &[Got], xid: u32, allowed: &[u32], min_segments: usize) -> Vec<(i64, u32)> {
    let mut segments = 0;
    let mut inside = false;
    let mut ids = Vec::new();
    for g in got {
        match &g.msg {
            M::StreamStart { xid: sx, first_segment } if *sx == xid => {
                assert_eq!(
                    *first_segment,
                    segments == 0,
                    "first_segment flag of segment {segments}"
                );
                segments += 1;
                inside = true;
            }
            M::StreamStart { .. } => inside = false,
            M::StreamStop => inside = false,
            m if inside => {
                let mx = m
                    .stream_xid()
                    .unwrap_or_else(|| panic!("no xid inside a stream: {m:?}"));
                assert!(allowed.contains(&mx), "xid {mx} of {m:?} is none of {allowed:?}");
                match m {
                    M::Insert { relid: _, new, .. } => {
                        let id = inserted_id(m).unwrap();
                        if id > 0 {
                            assert_eq!(new[1], t(&"x".repeat(100)));
                        }
                        ids.push((id, mx));
                    }
                    M::Relation { relation, .. } => assert_eq!(relation.name, "big"),
                    m => panic!("unexpected {m:?} in a stream"),
                }
            }
            m => assert!(m.stream_xid().is_none(), "{m:?} outside a stream carries an xid"),
        }
    }
    assert!(
        segments >= min_segments,
        "{segments} stream segments for xid {xid}:\n{}",
        dump(got)
    );
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_transaction_commit_protocol_2_and_max() {
    let db = fresh_db("pgo_stream").await;
    let max = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    big_table(&db, &publication).await;
    let slot2 = Slot::create(&db, false).await;
    let slotmax = Slot::create(&db, false).await;
    let slot_off = Slot::create(&db, false).await;
    let a = db.client().await;
    let b = db.client().await;

    let lsn0 = insert_lsn(&a).await;
    let ts0 = now_pg(&a).await;
    x(&a, "BEGIN").await;
    let xa = xid(&a).await;
    x(&a, &big_insert(1, BIG_ROWS)).await;
    // Another transaction commits while the big one is open.
    x(&b, "BEGIN").await;
    let xb = xid(&b).await;
    let lsn_b0 = insert_lsn(&b).await;
    x(&b, "INSERT INTO big VALUES (0, 'small'); COMMIT").await;
    let lsn_b1 = insert_lsn(&b).await;
    x(&a, &big_insert(BIG_ROWS + 1, 2 * BIG_ROWS)).await;
    x(&a, "COMMIT").await;
    let until = insert_lsn(&a).await;
    let ts1 = now_pg(&a).await;

    let stream = [("streaming", "on")];
    let got = slot2.collect(2, &publication, &stream, until).await;
    let gotmax = slotmax.collect(max, &publication, &stream, until).await;
    assert_eq!(got, gotmax, "protocol 2 and {max} stream differently");

    // The small transaction is sent whole between two segments of the big one; it describes
    // the relation again, as the streamed description is not known to be committed yet.
    assert_eq!(stream_shape(&got), "[S] B R I C [S] c", "{}", dump(&got));
    let ids = stream_segments(&got, xa, &[xa], 3);
    let want: Vec<(i64, u32)> = (1..=2 * BIG_ROWS).map(|i| (i, xa)).collect();
    assert_eq!(ids, want, "every row of the big transaction, in order, with its xid");

    let bi = got.iter().position(|g| matches!(g.msg, M::Begin { .. })).unwrap();
    check_txn(&got, bi, bi + 3, xb, lsn_b0, lsn_b1, (ts0, ts1));
    assert_eq!(inserted_id(&got[bi + 2].msg), Some(0));
    let last = got.last().unwrap();
    let M::StreamCommit {
        xid,
        flags,
        commit_lsn,
        end_lsn,
        commit_ts,
    } = last.msg
    else {
        panic!("{last:?}")
    };
    assert_eq!((xid, flags), (xa, 0));
    assert!(
        lsn_b1 < commit_lsn && commit_lsn < end_lsn && end_lsn <= until,
        "{lsn0} {commit_lsn} {end_lsn} {until}"
    );
    assert_eq!(last.wal_start, end_lsn);
    assert!(ts0 <= commit_ts && commit_ts <= ts1);

    // The same changes without streaming: one ordinary transaction, committed after B.
    let plain = slot_off.collect(2, &publication, &[], until).await;
    let plain_tags = tags(&plain);
    assert!(
        plain_tags.starts_with("B R I C B I I"),
        "{}",
        &plain_tags[..40.min(plain_tags.len())]
    );
    let n = plain.len();
    check_txn(&plain, 4, n - 1, xa, lsn0, until, (ts0, ts1));
    let M::Commit {
        commit_lsn: plain_commit,
        ..
    } = plain[n - 1].msg
    else {
        panic!()
    };
    assert_eq!(plain_commit, commit_lsn, "streamed and plain commit LSN agree");
    assert_eq!(n - 6, 2 * BIG_ROWS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_transaction_abort() {
    let db = fresh_db("pgo_sabort").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    big_table(&db, &publication).await;
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;

    // Decode while the transaction is open, and roll it back only once a segment of it has
    // been streamed. (Were it already rolled back when the walsender decodes it, PG15 would
    // notice on its first catalog access and send a cut-short, possibly empty, segment;
    // PG16 skips streaming such a transaction altogether.)
    let live = slot.collect_live(proto, &publication, &[("streaming", "on")]);
    x(&c, "BEGIN").await;
    let xa = xid(&c).await;
    x(&c, &big_insert(1, 2 * BIG_ROWS)).await;
    live.wait_for("a stream segment", |tags| tags.contains(&"E")).await;
    x(&c, "ROLLBACK").await;
    x(&c, "BEGIN").await;
    let xb = xid(&c).await;
    x(&c, "INSERT INTO big VALUES (0, 'after'); COMMIT").await;
    let until = insert_lsn(&c).await;
    let got = live.finish(until).await;

    assert_eq!(stream_shape(&got), "[S] A B R I C", "{}", dump(&got));
    let ids = stream_segments(&got, xa, &[xa], 1);
    let want: Vec<(i64, u32)> = (1..=ids.len() as i64).map(|i| (i, xa)).collect();
    assert!(!ids.is_empty() && ids == want, "streamed a prefix of the rows");
    let ai = got.iter().position(|g| matches!(g.msg, M::StreamAbort { .. })).unwrap();
    // Without parallel streaming (PG16+, protocol 4) there is no abort LSN / time.
    assert_eq!(
        got[ai].msg,
        M::StreamAbort {
            xid: xa,
            subxid: xa,
            abort_lsn: None,
            abort_ts: None
        }
    );
    assert!(matches!(got[ai + 1].msg, M::Begin { xid, .. } if xid == xb));
    assert_eq!(inserted_id(&got[ai + 3].msg), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_subtransaction_abort() {
    let db = fresh_db("pgo_subabort").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    big_table(&db, &publication).await;
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;

    let live = slot.collect_live(proto, &publication, &[("streaming", "on")]);
    x(&c, "BEGIN").await;
    let top = xid(&c).await;
    x(&c, "INSERT INTO big VALUES (-1, 'top')").await;
    x(&c, "SAVEPOINT s").await;
    x(&c, &big_insert(1, 2 * BIG_ROWS)).await;
    // The subtransaction's xid: pg_current_xact_id() gives the top-level one, but every xid
    // of the transaction holds a lock on itself.
    let locked: Vec<u32> = db
        .query_strings(&format!(
            "SELECT transactionid::text FROM pg_locks WHERE locktype = 'transactionid' AND pid = {}",
            q(&c, "SELECT pg_backend_pid()::text").await
        ))
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse::<u64>().unwrap() as u32)
        .collect();
    let subs: Vec<u32> = locked.iter().copied().filter(|x| *x != top).collect();
    assert_eq!(subs.len(), 1, "locks {locked:?}, top {top}");
    let sub = subs[0];
    // Roll the subtransaction back once some of it has been streamed.
    live.wait_for("a stream segment", |tags| tags.contains(&"E")).await;
    x(&c, "ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s").await;
    x(&c, "INSERT INTO big VALUES (-2, 'top again')").await;
    let lsn0 = insert_lsn(&c).await;
    x(&c, "COMMIT").await;
    let until = insert_lsn(&c).await;

    let got = live.finish(until).await;
    assert_eq!(stream_shape(&got), "[S] A [S] c", "{}", dump(&got));
    let ai = got.iter().position(|g| matches!(g.msg, M::StreamAbort { .. })).unwrap();
    assert_eq!(
        got[ai].msg,
        M::StreamAbort {
            xid: top,
            subxid: sub,
            abort_lsn: None,
            abort_ts: None
        }
    );
    assert_eq!(got.iter().filter(|g| matches!(g.msg, M::StreamAbort { .. })).count(), 1);

    // Changes inside a stream carry the xid of the (sub)transaction that made them, which is
    // how a client knows what a subtransaction abort discards.
    let ids = stream_segments(&got, top, &[top, sub], 2);
    assert_eq!(ids.first(), Some(&(-1, top)));
    assert_eq!(ids.last(), Some(&(-2, top)));
    let in_sub = &ids[1..ids.len() - 1];
    assert!(
        !in_sub.is_empty() && in_sub.iter().all(|(_, x)| *x == sub),
        "subtransaction rows carry its xid"
    );
    assert!(in_sub.iter().enumerate().all(|(i, (id, _))| *id == i as i64 + 1));
    // The last segment (after the abort) holds only the final top-level row.
    let before_abort = ids.iter().filter(|(id, _)| *id != -2).count();
    assert!(got[..ai].iter().filter(|g| inserted_id(&g.msg).is_some()).count() == before_abort);
    let M::StreamCommit {
        xid,
        commit_lsn,
        end_lsn,
        ..
    } = got.last().unwrap().msg
    else {
        panic!()
    };
    assert_eq!(xid, top);
    // lsn0 was taken just before COMMIT: the commit record may start right there.
    assert!(
        lsn0 <= commit_lsn && commit_lsn < end_lsn && end_lsn <= until,
        "{lsn0} {commit_lsn} {end_lsn} {until}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two-phase commit (protocol 3+)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_prepare_commit_and_rollback_prepared() {
    let db = fresh_db("pgo_2pc").await;
    let proto = max_proto(db.cluster.version_num());
    assert!(proto >= 3, "two-phase decoding needs PostgreSQL 15 (protocol 3)");
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION {publication} FOR TABLE t;"
    ))
    .await;
    let slot = Slot::create(&db, true).await;
    let c = db.client().await;
    let relid = oid(&c, "'t'::regclass").await;
    let g1 = db.unique("gid commit");
    let g2 = db.unique("gid rollback");

    let lsn0 = insert_lsn(&c).await;
    let ts0 = now_pg(&c).await;
    x(&c, "BEGIN").await;
    let x1 = xid(&c).await;
    x(
        &c,
        &format!("INSERT INTO t VALUES (1, 'one'); PREPARE TRANSACTION '{g1}'"),
    )
    .await;
    let lsn1 = insert_lsn(&c).await;
    x(&c, &format!("COMMIT PREPARED '{g1}'")).await;
    let lsn2 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let x2 = xid(&c).await;
    x(
        &c,
        &format!("UPDATE t SET v = 'uno' WHERE id = 1; INSERT INTO t VALUES (2, 'two'); PREPARE TRANSACTION '{g2}'"),
    )
    .await;
    let lsn3 = insert_lsn(&c).await;
    x(&c, &format!("ROLLBACK PREPARED '{g2}'")).await;
    let lsn4 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let x3 = xid(&c).await;
    x(&c, "INSERT INTO t VALUES (3, 'three'); COMMIT").await;
    let until = insert_lsn(&c).await;
    let ts1 = now_pg(&c).await;

    let got = slot.collect(proto, &publication, &[("two_phase", "on")], until).await;
    assert_eq!(tags(&got), "b R I P K b U I P r B I C", "{}", dump(&got));

    // (prepare_lsn, end_lsn, prepare_ts) of the prepared transaction at b..=p, checked.
    let prepared = |b: usize, p: usize, xid: u32, gid: &str, before: Lsn, after: Lsn| {
        let M::BeginPrepare {
            prepare_lsn,
            end_lsn,
            prepare_ts,
            xid: bx,
            gid: bg,
        } = got[b].msg.clone()
        else {
            panic!()
        };
        assert_eq!(
            got[p].msg,
            M::Prepare {
                flags: 0,
                prepare_lsn,
                end_lsn,
                prepare_ts,
                xid,
                gid: gid.into()
            },
            "Prepare repeats BeginPrepare"
        );
        assert_eq!((bx, bg.as_str()), (xid, gid));
        assert!(
            before < prepare_lsn && prepare_lsn < end_lsn && end_lsn <= after,
            "{before} {prepare_lsn} {end_lsn} {after}"
        );
        assert!(ts0 <= prepare_ts && prepare_ts <= ts1);
        assert_eq!(got[p].wal_start, end_lsn);
        (prepare_lsn, end_lsn, prepare_ts)
    };
    prepared(0, 3, x1, &g1, lsn0, lsn1);
    assert_eq!(relation(&got[1]).relid, relid);
    assert_eq!(
        got[2].msg,
        M::Insert {
            xid: None,
            relid,
            new: vec![t("1"), t("one")]
        }
    );
    let M::CommitPrepared {
        flags,
        commit_lsn,
        end_lsn,
        commit_ts,
        xid,
        gid,
    } = got[4].msg.clone()
    else {
        panic!()
    };
    assert_eq!((flags, xid, gid.as_str()), (0, x1, g1.as_str()));
    // COMMIT PREPARED is the next record after PREPARE: its LSN may be the prepare's end.
    assert!(
        lsn1 <= commit_lsn && commit_lsn < end_lsn && end_lsn <= lsn2,
        "{lsn1} {commit_lsn} {end_lsn} {lsn2}"
    );
    assert!(ts0 <= commit_ts && commit_ts <= ts1);
    assert_eq!(got[4].wal_start, end_lsn);

    let (_, prep_end, prep_ts) = prepared(5, 8, x2, &g2, lsn2, lsn3);
    assert_eq!(
        got[6].msg,
        M::Update {
            xid: None,
            relid,
            old: None,
            new: vec![t("1"), t("uno")]
        }
    );
    let M::RollbackPrepared {
        flags,
        prepare_end_lsn,
        rollback_end_lsn,
        prepare_ts,
        rollback_ts,
        xid,
        gid,
    } = got[9].msg.clone()
    else {
        panic!()
    };
    assert_eq!((flags, xid, gid.as_str()), (0, x2, g2.as_str()));
    assert_eq!(
        (prepare_end_lsn, prepare_ts),
        (prep_end, prep_ts),
        "RollbackPrepared names its Prepare"
    );
    assert!(lsn3 < rollback_end_lsn && rollback_end_lsn <= lsn4);
    assert!(prep_ts <= rollback_ts && rollback_ts <= ts1);
    assert_eq!(got[9].wal_start, rollback_end_lsn);

    check_txn(&got, 10, 12, x3, lsn4, until, (ts0, ts1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_streamed_prepare() {
    let db = fresh_db("pgo_2pcstream").await;
    let proto = max_proto(db.cluster.version_num());
    assert!(proto >= 3, "two-phase decoding needs PostgreSQL 15 (protocol 3)");
    let publication = db.unique("pub");
    big_table(&db, &publication).await;
    let slot = Slot::create(&db, true).await;
    let c = db.client().await;
    let g1 = db.unique("big commit");
    let g2 = db.unique("big rollback");

    let live = slot.collect_live(proto, &publication, &[("two_phase", "on"), ("streaming", "on")]);
    let lsn0 = insert_lsn(&c).await;
    x(&c, "BEGIN").await;
    let x1 = xid(&c).await;
    x(&c, &big_insert(1, 2 * BIG_ROWS)).await;
    x(&c, &format!("PREPARE TRANSACTION '{g1}'")).await;
    let lsn1 = insert_lsn(&c).await;
    x(&c, &format!("COMMIT PREPARED '{g1}'")).await;
    x(&c, "BEGIN").await;
    let x2 = xid(&c).await;
    x(&c, &big_insert(2 * BIG_ROWS + 1, 4 * BIG_ROWS)).await;
    x(&c, &format!("PREPARE TRANSACTION '{g2}'")).await;
    let lsn2 = insert_lsn(&c).await;
    // Roll back only once the prepared transaction has been decoded: had the rollback come
    // first, the walsender could notice the abort while streaming and cut the stream short.
    live.wait_for("the second StreamPrepare", |tags| count(tags, "p") == 2)
        .await;
    x(&c, &format!("ROLLBACK PREPARED '{g2}'")).await;
    let until = insert_lsn(&c).await;
    let got = live.finish(until).await;
    // A streamed prepared transaction has no BeginPrepare: segments, then StreamPrepare.
    assert_eq!(stream_shape(&got), "[S] p K [S] p r", "{}", dump(&got));
    let pi: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, g)| matches!(g.msg, M::StreamPrepare { .. }))
        .map(|(i, _)| i)
        .collect();
    let ids1 = stream_segments(&got[..pi[0]], x1, &[x1], 2);
    assert_eq!(ids1, (1..=2 * BIG_ROWS).map(|i| (i, x1)).collect::<Vec<_>>());
    let ids2 = stream_segments(&got[pi[0] + 2..pi[1]], x2, &[x2], 2);
    assert_eq!(
        ids2,
        (2 * BIG_ROWS + 1..=4 * BIG_ROWS).map(|i| (i, x2)).collect::<Vec<_>>()
    );

    let M::StreamPrepare {
        flags,
        prepare_lsn,
        end_lsn,
        prepare_ts,
        xid,
        gid,
    } = got[pi[0]].msg.clone()
    else {
        panic!()
    };
    assert_eq!((flags, xid, gid.as_str()), (0, x1, g1.as_str()));
    assert!(lsn0 < prepare_lsn && prepare_lsn < end_lsn && end_lsn <= lsn1);
    assert_eq!(got[pi[0]].wal_start, end_lsn);
    let M::CommitPrepared {
        xid,
        gid,
        commit_lsn,
        commit_ts,
        ..
    } = got[pi[0] + 1].msg.clone()
    else {
        panic!()
    };
    assert_eq!((xid, gid.as_str()), (x1, g1.as_str()));
    assert!(
        commit_lsn >= end_lsn && commit_ts >= prepare_ts,
        "{commit_lsn} {end_lsn}"
    );

    let M::StreamPrepare {
        prepare_lsn,
        end_lsn,
        prepare_ts,
        xid,
        gid,
        ..
    } = got[pi[1]].msg.clone()
    else {
        panic!()
    };
    assert_eq!((xid, gid.as_str()), (x2, g2.as_str()));
    assert!(lsn1 < prepare_lsn && prepare_lsn < end_lsn && end_lsn <= lsn2);
    let M::RollbackPrepared {
        prepare_end_lsn,
        prepare_ts: rp_ts,
        rollback_end_lsn,
        xid,
        gid,
        ..
    } = got[pi[1] + 1].msg.clone()
    else {
        panic!()
    };
    assert_eq!(
        (xid, gid.as_str(), prepare_end_lsn, rp_ts),
        (x2, g2.as_str(), end_lsn, prepare_ts)
    );
    assert!(lsn2 < rollback_end_lsn && rollback_end_lsn <= until);
}

// ---------------------------------------------------------------------------------------------
// PG15 publications: column lists and row filters
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_list_and_row_filter() {
    let db = fresh_db("pgo_filter").await;
    let proto = max_proto(db.cluster.version_num());
    let publication = db.unique("pub");
    db.exec(&format!(
        "CREATE TABLE rf (id int PRIMARY KEY, keep text, secret text);
         CREATE PUBLICATION {publication} FOR TABLE rf (id, keep) WHERE (id > 10);"
    ))
    .await;
    let slot = Slot::create(&db, false).await;
    let c = db.client().await;
    let relid = oid(&c, "'rf'::regclass").await;
    x(
        &c,
        "BEGIN;
         INSERT INTO rf VALUES (5, 'a', 's1');
         INSERT INTO rf VALUES (20, 'b', 's2');
         UPDATE rf SET id = 30 WHERE id = 5;
         UPDATE rf SET id = 6 WHERE id = 20;
         UPDATE rf SET keep = 'c', secret = 's3' WHERE id = 30;
         UPDATE rf SET secret = 's4' WHERE id = 6;
         DELETE FROM rf WHERE id = 30;
         COMMIT",
    )
    .await;
    let until = insert_lsn(&c).await;
    let got = slot.collect(proto, &publication, &[], until).await;
    assert_eq!(tags(&got), "B R I I D U D C", "{}", dump(&got));
    assert_eq!(
        cols(relation(&got[1])),
        vec![(1, "id", INT4, -1), (0, "keep", TEXT, -1)]
    );
    let body: Vec<M> = got[2..7].iter().map(|g| g.msg.clone()).collect();
    assert_eq!(
        body,
        vec![
            M::Insert {
                xid: None,
                relid,
                new: vec![t("20"), t("b")]
            },
            // An update into the filter is sent as an insert ...
            M::Insert {
                xid: None,
                relid,
                new: vec![t("30"), t("a")]
            },
            // ... and one out of it as a delete of the old key.
            M::Delete {
                xid: None,
                relid,
                old: (OldKind::Key, vec![t("20"), N])
            },
            M::Update {
                xid: None,
                relid,
                old: None,
                new: vec![t("30"), t("c")]
            },
            M::Delete {
                xid: None,
                relid,
                old: (OldKind::Key, vec![t("30"), N])
            },
        ]
    );
}
