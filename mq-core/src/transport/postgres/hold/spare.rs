//! The spare transaction: one begun in the round trip of a batch's commit, kept briefly
//! for the transport's next held batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tx::Tx;

/// The longest a spare transaction waits for a batch before it is rolled back: a worker
/// reserves again within milliseconds while it has work, and one that has none must not
/// leave a connection idle in a transaction.
const SPARE_AGE: Duration = Duration::from_millis(100);

/// A transaction begun in the round trip of a batch's commit (a `BEGIN` after its
/// `COMMIT`), for the transport's next batch, which then costs a round trip less. It holds
/// no row and no snapshot (read committed between statements), only its connection and
/// its place among the open batches; unused for [`SPARE_AGE`], it is rolled back.
#[derive(Debug, Default)]
pub(in crate::transport::postgres) struct Spare {
    slot: std::sync::Mutex<Option<Kept>>,
    kept: AtomicU64,
}

#[derive(Debug)]
struct Kept {
    begun: Instant,
    number: u64,
    tx: Tx,
}

impl Spare {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slot().is_none()
    }

    /// Keeps `tx` for the next batch, for at most [`SPARE_AGE`]; rolled back at once if
    /// another is kept already.
    pub(super) fn put(self: &Arc<Self>, tx: Tx) {
        let mut slot = self.slot();
        if slot.is_some() {
            drop(slot);
            tokio::spawn(tx.end("ROLLBACK"));
            return;
        }
        let number = self.kept.fetch_add(1, Ordering::Relaxed);
        *slot = Some(Kept {
            begun: Instant::now(),
            number,
            tx,
        });
        drop(slot);
        let spare = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SPARE_AGE).await;
            let expired = {
                let mut slot = spare.slot();
                match &*slot {
                    Some(kept) if kept.number == number => slot.take(),
                    _ => None,
                }
            };
            if let Some(kept) = expired {
                let _ = kept.tx.end("ROLLBACK").await;
            }
        });
    }

    /// The spare transaction, if one is kept and younger than [`SPARE_AGE`].
    pub(in crate::transport::postgres) fn take(&self) -> Option<Tx> {
        let kept = self.slot().take()?;
        if kept.begun.elapsed() < SPARE_AGE {
            return Some(kept.tx);
        }
        tokio::spawn(kept.tx.end("ROLLBACK"));
        None
    }
}

impl Drop for Spare {
    /// Rolled back when there is a runtime to do it in; else its connection is closed.
    fn drop(&mut self) {
        let Some(kept) = self.slot().take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(kept.tx.end("ROLLBACK"));
        }
    }
}
