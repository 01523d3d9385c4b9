//! The deadlines of a connection: how long a batch may wait for its reply, and the
//! watchdog that abandons a connection whose server went silent (see the module doc of
//! [`connection`](super)).

use std::time::Duration;

use super::state::{Closed, Shared};
use crate::transport::beanstalk::proto::Command;

/// How long the server may take to answer the oldest command waiting on a connection
/// (beyond what its `reserve-with-timeout` asks) before the connection is abandoned.
///
/// ```
/// use mq::transport::beanstalk::connection::{REPLY_TIMEOUT, WATCHDOG_TICK};
///
/// // A server that stops answering is noticed within REPLY_TIMEOUT and one tick.
/// assert!(REPLY_TIMEOUT + WATCHDOG_TICK < std::time::Duration::from_secs(6));
/// ```
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the watchdog looks at the oldest command waiting.
///
/// ```
/// use mq::transport::beanstalk::connection::WATCHDOG_TICK;
///
/// assert_eq!(WATCHDOG_TICK.as_millis(), 250);
/// ```
pub const WATCHDOG_TICK: Duration = Duration::from_millis(250);

/// The time `commands` may wait in the server by design; `None` for no limit.
pub(super) fn allowance(commands: &[Command<'_>]) -> Option<Duration> {
    commands
        .iter()
        .try_fold(Duration::ZERO, |sum, command| match command {
            Command::Reserve => None,
            Command::ReserveWithTimeout(seconds) => {
                Some(sum + Duration::from_secs(u64::from(*seconds)))
            }
            _ => Some(sum),
        })
}

/// Abandons the connection when its oldest batch gets no reply in time; ends when the
/// connection closes.
pub(super) async fn watchdog(shared: std::sync::Weak<Shared>, address: String) {
    let mut tick = tokio::time::interval(WATCHDOG_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.lock().closed.is_some() {
            return;
        }
        if let Some(silent) = shared.stalled() {
            let cause = format!(
                "no reply within {}s (the server at {address} accepts connections but does \
                 not answer: stopped, overloaded, or not beanstalkd)",
                silent.as_secs()
            );
            tracing::warn!(server = %address, "{cause}; abandoning the connection");
            shared.abandon(Closed::Unreachable(cause, None));
            return;
        }
    }
}
