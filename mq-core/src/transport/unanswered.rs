//! The count of acks a backend returned from early ([`Transport::send_ack`]) and has not
//! had answered yet, with the wait for none ([`Transport::acks_answered`]).
//!
//! [`Transport::send_ack`]: super::Transport::send_ack
//! [`Transport::acks_answered`]: super::Transport::acks_answered

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct Unanswered {
    count: AtomicUsize,
    none_left: Notify,
}

impl Unanswered {
    /// One more ack sent and not answered.
    pub(crate) fn sent(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// `n` of them answered (taken effect or refused).
    pub(crate) fn answered(&self, n: usize) {
        if n > 0 && self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.none_left.notify_waiters();
        }
    }

    /// Resolves when every ack sent before the call has been answered: at once when the
    /// count is zero, else the first time it reaches zero (not checked again after that
    /// wake-up, so acks sent after it do not extend the wait).
    pub(crate) async fn none_left(&self) {
        let none_left = self.none_left.notified();
        tokio::pin!(none_left);
        none_left.as_mut().enable();
        if self.count.load(Ordering::Acquire) != 0 {
            none_left.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_wait_ends_when_the_last_answer_comes() {
        let unanswered = Arc::new(Unanswered::default());
        unanswered.none_left().await;
        unanswered.sent();
        unanswered.sent();
        let waiting = tokio::spawn({
            let unanswered = unanswered.clone();
            async move { unanswered.none_left().await }
        });
        unanswered.answered(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "one ack is still unanswered");
        unanswered.answered(1);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the last answer")
            .unwrap();
    }
}
