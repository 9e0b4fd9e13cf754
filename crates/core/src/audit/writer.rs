//! The server's audit sink: a bounded channel and a background task that writes records in
//! batches, so that recording costs a request one non-blocking channel send.
//!
//! - Records are written [`BATCH_INTERVAL`] after the first of them arrived, as many as have
//!   arrived by then, in inserts of at most [`BATCH_MAX`]. The task does not wait on the channel
//!   during that interval, so that a record sent costs no wake-up.
//! - [`AuditWriter::shutdown`] (the server's clean shutdown) stops accepting, writes everything
//!   queued, and returns when it is stored. A crash loses what was queued and not yet written:
//!   at most the last [`BATCH_INTERVAL`] of records (plus the batch being written).
//! - When the channel is full (the database cannot keep up, [`CHANNEL_CAPACITY`] records behind)
//!   a record is dropped rather than stalling the request that made it: the drop is counted
//!   ([`ChannelSink::dropped`]) and logged as a warning (at most once a second, with the count), so
//!   a lost record is never silent. A batch the store refuses is logged and counted the same way.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{AuditRecord, AuditSink};
use crate::store::SharedStore;

/// Most records in one insert.
pub const BATCH_MAX: usize = 1000;
/// Longest a record waits in memory before its batch is written.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Records queued before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 50_000;

/// The sending side, handed to the services.
pub struct ChannelSink {
    tx: mpsc::Sender<AuditRecord>,
    dropped: AtomicU64,
    /// Unix seconds of the last warning about drops (one warning a second at most).
    last_warning_s: AtomicI64,
}

impl ChannelSink {
    /// Records lost since start: dropped on a full channel or after shutdown, or refused by the
    /// store.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn count_lost(&self, n: u64, why: &str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let last = self.last_warning_s.load(Ordering::Relaxed);
        if now_s != last
            && self.last_warning_s.compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(lost = n, lost_since_start = total, "audit records lost: {why}");
        }
    }
}

impl AuditSink for ChannelSink {
    fn record(&self, record: AuditRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.count_lost(1, "the audit queue is full (the database is not keeping up)")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.count_lost(1, "the audit writer has stopped (shutting down)")
            }
        }
    }
}

/// The background task; stop it with [`AuditWriter::shutdown`] to write what is queued.
pub struct AuditWriter {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Stops accepting records, writes every queued one, and returns once they are stored.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!("the audit writer failed: {e}");
        }
    }
}

/// Starts the writer on the current runtime.
pub fn start(store: SharedStore) -> (Arc<ChannelSink>, AuditWriter) {
    start_with(store, CHANNEL_CAPACITY)
}

/// [`start`] with another queue size (tests of a full queue).
pub fn start_with(store: SharedStore, capacity: usize) -> (Arc<ChannelSink>, AuditWriter) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let sink = Arc::new(ChannelSink { tx, dropped: AtomicU64::new(0), last_warning_s: AtomicI64::new(0) });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(store, rx, stopped, sink.clone()));
    (sink, AuditWriter { stop, task })
}

async fn run(
    store: SharedStore,
    mut rx: mpsc::Receiver<AuditRecord>,
    mut stopped: oneshot::Receiver<()>,
    sink: Arc<ChannelSink>,
) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH_MAX);
    // A oneshot receiver must not be polled again once it has answered.
    let mut stopping = false;
    while !stopping {
        // Wait for a batch's first record (or the stop).
        tokio::select! {
            biased;
            _ = &mut stopped => stopping = true,
            got = rx.recv_many(&mut batch, BATCH_MAX) => if got == 0 { break },
        }
        // Then let records gather in the channel until the interval is over, without waiting on
        // the channel meanwhile: a task waiting on it is woken by every record sent, which at
        // 20,000 token reads a second was a wake-up and a task switch per read.
        if !stopping && batch.len() < BATCH_MAX {
            tokio::select! {
                biased;
                _ = &mut stopped => stopping = true,
                () = tokio::time::sleep(BATCH_INTERVAL) => {}
            }
        }
        // Write what has arrived, in batches of at most BATCH_MAX.
        loop {
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            let full = batch.len() >= BATCH_MAX;
            write(&store, &mut batch, &sink).await;
            if !full {
                break;
            }
        }
    }
    // Shutdown: refuse new records, then write every queued one.
    rx.close();
    loop {
        let room = BATCH_MAX - batch.len();
        if rx.recv_many(&mut batch, room).await == 0 {
            break;
        }
        if batch.len() >= BATCH_MAX {
            write(&store, &mut batch, &sink).await;
        }
    }
    write(&store, &mut batch, &sink).await;
}

async fn write(store: &SharedStore, batch: &mut Vec<AuditRecord>, sink: &ChannelSink) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.insert_audit_records(batch).await {
        tracing::error!(records = batch.len(), "writing audit records failed: {e}");
        sink.count_lost(batch.len() as u64, "the database refused a batch");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProjectId;

    /// A full queue drops new records instead of waiting, and counts every one; so does a closed
    /// one (after shutdown).
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, mut rx) = mpsc::channel(2);
        let sink = ChannelSink { tx, dropped: AtomicU64::new(0), last_warning_s: AtomicI64::new(0) };
        let record = || AuditRecord::new(&ProjectId::generate(), "Test");
        for _ in 0..5 {
            sink.record(record());
        }
        assert_eq!(sink.dropped(), 3);
        assert!(rx.recv().await.is_some() && rx.recv().await.is_some());
        sink.record(record());
        assert_eq!(sink.dropped(), 3, "room again");
        rx.close();
        sink.record(record());
        assert_eq!(sink.dropped(), 4);
    }
}
