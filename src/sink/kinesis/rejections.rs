//! Per-record rejections of PutRecords that no resend can change (issue 8 step 6).
//!
//! Kinesis answers a PutRecords call entry by entry. Throttling and internal failures
//! (`ProvisionedThroughputExceededException`, `InternalFailure`, `KMSThrottlingException`)
//! pass with a resend, and the sender resends them. Any other code on an entry is
//! permanent. What it means depends on its neighbours:
//!
//! * other entries of the same call were accepted: the problem is the record's own, so
//!   with `[dead_letter]` the record becomes a dead letter ([`dead_letter_hook`]) and counts
//!   as delivered; without it the run stops with an error naming the record;
//! * no entry was accepted: the problem is the stream's (a disabled or inaccessible KMS
//!   key, a deleted stream), so the run stops with one clear error and nothing becomes a
//!   dead letter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::dms_json::parse_stream_position;
use super::planner::{Entry, Request};
use crate::error::Error;
use crate::model::Lsn;
use crate::sink::dead_letter::{DeadLetter, DeadLetterRoute, REFUSED_HINT};

/// What the sender calls for a record rejected for good while others of its call were
/// accepted: writes it durably somewhere (a dead letter). Blocking; `Err` stops the run.
pub type RejectHook = Arc<dyn Fn(&Entry, &str, &str) -> Result<(), Error> + Send + Sync>;

/// Whether an entry rejected with `code` may pass when it is sent again.
pub fn retryable(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "InternalFailure"
            | "KMSThrottlingException"
            | "ThrottlingException"
            | "LimitExceededException"
            | "ServiceUnavailable"
    )
}

/// Settles the permanent rejections of an answered call (see the module documentation):
/// `codes` has one `(code, message)` per rejected entry of `request`, `failed` one flag per
/// entry. A record handed to `hook` is marked not failed (delivered). `Err` is the error
/// that stops the sender.
pub async fn settle(
    stream: &str,
    request: &Request,
    failed: &mut [bool],
    codes: &[Option<(String, String)>],
    hook: Option<&RejectHook>,
) -> Result<(), Error> {
    let permanent: Vec<usize> = (0..codes.len())
        .filter(|&i| codes[i].as_ref().is_some_and(|(c, _)| !retryable(c)))
        .collect();
    let Some(&first) = permanent.first() else {
        return Ok(());
    };
    let (code, message) = codes[first].clone().expect("permanent");
    let accepted = failed.iter().any(|f| !f);
    if !accepted {
        return Err(Error::runtime(format!(
            "Kinesis stream {stream} refused every record of a PutRecords call: {code}: {message}"
        ))
        .with_hint(stream_hint(&code)));
    }
    let Some(hook) = hook else {
        let what = String::from_utf8_lossy(
            &request.entries[first].1.data[..request.entries[first].1.data.len().min(200)],
        )
        .into_owned();
        return Err(Error::runtime(format!("Kinesis stream {stream} refused a record for good ({code}: {message}) and accepted the others of its call; the record starts {what:?}"))
            .with_hint(REFUSED_HINT));
    };
    for i in permanent {
        let (code, message) = codes[i].clone().expect("permanent");
        let (entry, hook) = (request.entries[i].1.clone(), hook.clone());
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            // A KPL aggregate is refused whole: each user record inside is a dead letter.
            match super::kpl::deaggregate(&entry.data)? {
                super::kpl::Unpacked::Plain => hook(&entry, &code, &message),
                super::kpl::Unpacked::Aggregated(users) => users.into_iter().try_for_each(|u| {
                    let user = Entry { partition_key: u.partition_key, explicit_hash_key: u.explicit_hash_key, data: u.data.into() };
                    hook(&user, &code, &message)
                }),
            }
        })
        .await
        .map_err(|e| Error::runtime(format!("internal: writing a dead letter: {e}")))??;
        failed[i] = false;
    }
    Ok(())
}

fn stream_hint(code: &str) -> &'static str {
    if code.starts_with("KMS") {
        "the stream's KMS key must be enabled and usable by these credentials (kms:GenerateDataKey)"
    } else {
        super::sender::refusal_hint(code)
    }
}

/// Key column names by `schema.table`, kept current by the sink's `relation` calls, so a
/// dead letter made from a record names its key.
pub type KeyColumns = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// A [`RejectHook`] that writes the rejected DMS-JSON record as a dead letter through
/// `route`: table, operation, LSN and `_seq` (from `stream-position`), commit time, the
/// values of `data` as text, the key from `keys`, and the code and message as the reason.
pub fn dead_letter_hook(route: DeadLetterRoute, keys: KeyColumns) -> RejectHook {
    Arc::new(move |entry: &Entry, code: &str, message: &str| {
        let v: serde_json::Value = serde_json::from_slice(&entry.data).unwrap_or_default();
        let m = &v["metadata"];
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let (schema, table) = (
            text(&m["schema-name"]).unwrap_or_default(),
            text(&m["table-name"]).unwrap_or_default(),
        );
        let (lsn, seq) = m["stream-position"]
            .as_str()
            .and_then(parse_stream_position)
            .unwrap_or((Lsn::ZERO, -1));
        let op = match m["operation"].as_str().unwrap_or("") {
            "load" => "L".to_string(),
            "insert" => "I".to_string(),
            "update" => "U".to_string(),
            "delete" => "D".to_string(),
            other => other.to_string(),
        };
        let values: std::collections::BTreeMap<String, Option<String>> = v["data"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default();
        let qualified = format!("{schema}.{table}");
        let key = keys
            .lock()
            .expect("not poisoned")
            .get(&qualified)
            .map(|names| {
                names
                    .iter()
                    .map(|n| (n.clone(), values.get(n).cloned().flatten()))
                    .collect()
            })
            .unwrap_or_default();
        let letter = DeadLetter {
            reason: format!(
                "Kinesis rejected the record for good: {code}: {message} (partition key {:?})",
                entry.partition_key
            ),
            sink: route.sink().to_string(),
            table: qualified,
            op,
            lsn: lsn.to_string(),
            seq,
            xid: m["transaction-id"]
                .as_u64()
                .and_then(|x| u32::try_from(x).ok()),
            commit_timestamp: text(&m["commit-timestamp"]).unwrap_or_default(),
            key,
            column: None,
            values,
            unchanged: Vec::new(),
            omitted: Default::default(),
            written_at: crate::time_fmt::now_rfc3339(),
        };
        // A control record has no stream position: its name is its content's (the same on
        // a replay, unlike its metadata timestamp).
        let name = match m["stream-position"].is_string() {
            true => route.sink().to_string(),
            false => format!(
                "{}-{}",
                route.sink(),
                fnv64(&format!("{}{}", m["operation"], v["control"]))
            ),
        };
        route.write(&DeadLetter::key(&schema, &table, lsn, seq, &name), &letter)
    })
}

fn fnv64(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> Request {
        let mut planner = crate::sink::kinesis::planner::Planner::default();
        for i in 0..n {
            planner.push(Entry {
                partition_key: format!("k{i}"),
                explicit_hash_key: None,
                data: bytes::Bytes::from_static(b"{}"),
            });
        }
        planner.next_request().expect("a request")
    }

    fn code(c: &str) -> Option<(String, String)> {
        Some((c.to_string(), "m".to_string()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_record_of_its_own_is_a_dead_letter_a_stream_wide_problem_stops() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let hook: RejectHook = Arc::new(move |e: &Entry, c: &str, _: &str| {
            s.lock()
                .unwrap()
                .push((e.partition_key.clone(), c.to_string()));
            Ok(())
        });
        // Throttling only: resent, nothing else happens.
        let mut failed = vec![true, false];
        settle(
            "s",
            &request(2),
            &mut failed,
            &[code("ProvisionedThroughputExceededException"), None],
            Some(&hook),
        )
        .await
        .unwrap();
        assert_eq!(failed, [true, false]);
        // A permanent code beside an accepted entry and a throttled one.
        let mut failed = vec![true, false, true];
        settle(
            "s",
            &request(3),
            &mut failed,
            &[
                code("KMSAccessDeniedException"),
                None,
                code("InternalFailure"),
            ],
            Some(&hook),
        )
        .await
        .unwrap();
        assert_eq!(failed, [false, false, true]);
        assert_eq!(
            *seen.lock().unwrap(),
            [("k0".to_string(), "KMSAccessDeniedException".to_string())]
        );
        // Nothing accepted: the stream's problem.
        let mut failed = vec![true, true];
        let e = settle(
            "s",
            &request(2),
            &mut failed,
            &[code("KMSDisabledException"), code("KMSDisabledException")],
            Some(&hook),
        )
        .await
        .unwrap_err();
        assert!(
            e.message.contains("refused every record") && e.to_string().contains("KMS key"),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Without dead letters: an error naming the record.
        let mut failed = vec![true, false];
        let e = settle(
            "s",
            &request(2),
            &mut failed,
            &[code("KMSAccessDeniedException"), None],
            None,
        )
        .await
        .unwrap_err();
        assert!(
            e.message.contains("refused a record for good")
                && e.to_string().contains("[dead_letter]"),
            "{e}"
        );
    }
}
