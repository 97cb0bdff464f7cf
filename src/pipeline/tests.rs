//! The pipeline with sinks of both deliveries: the position confirmed to the slot is the
//! lowest watermark, and the end of a run waits for asynchronous sinks.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::relations::CatalogLookup;
use crate::model::CatalogType;
use super::*;
use crate::sink::{Delivery, Watermark};
use crate::source::pgoutput::test_wire::Enc;

const RELID: u32 = 16_400;

/// A sink that records what it is handed. Synchronous: its flush raises the watermark.
/// Asynchronous: its flush only queues the position, raised later by the test ("acks").
struct FakeSink {
    delivery: Delivery,
    watermark: Arc<Watermark>,
    pending: bool,
    queued: Arc<Mutex<Vec<Lsn>>>,
    drained: Arc<Mutex<bool>>,
}

/// What a test watches of a [`FakeSink`] after handing it to the pipeline.
#[derive(Clone)]
struct Probe {
    watermark: Arc<Watermark>,
    queued: Arc<Mutex<Vec<Lsn>>>,
    drained: Arc<Mutex<bool>>,
}

impl FakeSink {
    fn new(delivery: Delivery) -> (FakeSink, Probe) {
        let probe = Probe { watermark: Arc::default(), queued: Arc::default(), drained: Arc::default() };
        let p = probe.clone();
        (FakeSink { delivery, watermark: p.watermark, pending: false, queued: p.queued, drained: p.drained }, probe)
    }
}

impl Sink for FakeSink {
    fn describe(&self) -> String {
        format!("fake {:?}", self.delivery)
    }
    fn delivery(&self) -> Delivery {
        self.delivery
    }
    fn watermark(&self) -> Arc<Watermark> {
        self.watermark.clone()
    }
    fn recover(&mut self) -> Result<Option<Checkpoint>> {
        Ok(None)
    }
    fn begin(&mut self, _: &TxnMeta) -> Result<()> {
        Ok(())
    }
    fn relation(&mut self, _: &Arc<TableSchema>, _: &TxnMeta) -> Result<()> {
        Ok(())
    }
    fn row(&mut self, _: &Arc<TableSchema>, _: &OutputRow<'_>) -> Result<()> {
        Ok(())
    }
    fn commit(&mut self, _: &TxnMeta) -> Result<()> {
        self.pending = true;
        Ok(())
    }
    fn wants_flush(&self, _: Instant) -> bool {
        self.pending
    }
    fn has_pending(&self) -> bool {
        self.pending
    }
    fn flush(&mut self, cp: &Checkpoint) -> Result<()> {
        self.pending = false;
        match self.delivery {
            Delivery::ExactlyOnceFiles => self.watermark.raise(cp.end_lsn),
            Delivery::AtLeastOnceRecords => self.queued.lock().unwrap().push(cp.end_lsn),
        }
        Ok(())
    }
    fn drain(&mut self) -> Result<()> {
        // The "acks" of everything queued arrive.
        if let Some(last) = self.queued.lock().unwrap().last() {
            self.watermark.raise(*last);
        }
        *self.drained.lock().unwrap() = true;
        Ok(())
    }
}

struct NoCatalog;

impl CatalogLookup for NoCatalog {
    fn type_facts(&mut self, _: u32) -> Result<Option<CatalogType>> {
        Ok(None)
    }
    fn primary_key(&mut self, _: u32) -> Result<Vec<String>> {
        Ok(vec!["id".into()])
    }
}

fn data(bytes: Bytes) -> SourceEvent {
    SourceEvent::Data { wal_end: Lsn::ZERO, data: bytes }
}

/// One transaction inserting `id` into `public.t (id int4)`, committed at `end`.
fn transaction(id: &str, end: u64) -> Vec<SourceEvent> {
    let commit_lsn = end - 8;
    vec![
        data(Enc::tag(b'B').u64(commit_lsn).i64(0).u32(700).build()),
        data(Enc::tag(b'R').u32(RELID).cstr("public").cstr("t").u8(b'd').i16(1).u8(1).cstr("id").u32(23).i32(-1).build()),
        data(Enc::tag(b'I').u32(RELID).u8(b'N').i16(1).text(id.as_bytes()).build()),
        data(Enc::tag(b'C').u8(0).u64(commit_lsn).u64(end).i64(0).build()),
    ]
}

fn open(sinks: Vec<Box<dyn Sink>>) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let opts = PipelineOptions {
        protocol_version: 1,
        until: None,
        tables: Vec::new(),
        spill_dir: dir.keep(),
        idle_checkpoint_interval: std::time::Duration::from_secs(3600),
        rules: Vec::new(),
        server_filters: Default::default(),
        stage_streamed: true,
    };
    Pipeline::open(sinks, Box::new(NoCatalog), opts).unwrap().0
}

#[test]
fn the_slot_gets_the_lowest_watermark_and_a_run_ends_only_when_every_sink_is_durable() {
    let (files, files_probe) = FakeSink::new(Delivery::ExactlyOnceFiles);
    let (records, records_probe) = FakeSink::new(Delivery::AtLeastOnceRecords);
    let (files_mark, records_mark) = (files_probe.watermark, records_probe.watermark.clone());
    let (queued, drained) = (records_probe.queued, records_probe.drained);
    let mut p = open(vec![Box::new(files), Box::new(records)]);
    let progress = p.progress();

    for ev in transaction("1", 0x1000).into_iter().chain([SourceEvent::Tick]) {
        assert_eq!(p.handle(ev).unwrap(), Flow::Continue);
    }
    assert_eq!(files_mark.get(), Lsn(0x1000), "the file sink is durable at its flush");
    assert_eq!(*queued.lock().unwrap(), vec![Lsn(0x1000)], "the record sink got the flush");
    assert_eq!(progress.durable(), Lsn::ZERO, "nothing is confirmed before the records are acknowledged");

    for ev in transaction("2", 0x2000).into_iter().chain([SourceEvent::Tick]) {
        p.handle(ev).unwrap();
    }
    records_mark.raise(Lsn(0x1000)); // the first flush is acknowledged
    assert_eq!(progress.durable(), Lsn(0x1000), "the slower sink holds the slot back");

    assert_eq!(p.handle(SourceEvent::Shutdown).unwrap(), Flow::Done);
    assert!(*drained.lock().unwrap(), "a run ends only after draining every sink");
    assert_eq!(progress.durable(), Lsn(0x2000));
}
