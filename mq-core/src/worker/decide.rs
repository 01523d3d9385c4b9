//! The decision at the end of a message's attempt: ack it, retry the slots that failed, or
//! move it to the failure store. Pure: no I/O, no clock, no randomness (the jitter comes in
//! as a number), so every rule is unit-tested here; `emit` carries the decision out.

use std::time::Duration;

use crate::envelope::Envelope;
use crate::retry::Backoff;
use crate::transport::{PutOptions, SlotFailure};

/// A failed slot of this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotOutcome {
    pub(crate) slot: String,
    pub(crate) error: String,
    pub(crate) permanent: bool,
}

/// What the message's options (or the worker's defaults) say about retries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) priority: u32,
    pub(crate) ttr: Duration,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
}

/// What to do with the item.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Every slot succeeded: delete it.
    Ack,
    /// Put `next` (the failed slots, the next attempt) on the queue with `options`, then
    /// delete the item.
    Retry {
        next: Envelope,
        options: PutOptions,
        /// The errors of this attempt, one line.
        error: String,
        /// The log line, e.g. `retried: 1 of 2 slots failed`.
        note: String,
        /// The slots that failed, each with its error.
        slots: Vec<SlotFailure>,
    },
    /// Move the item to the failure store; `next` is what a retry from the store runs.
    Fail {
        next: Envelope,
        options: PutOptions,
        reason: String,
        slots: Vec<SlotFailure>,
    },
}

/// The decision after an attempt of `envelope` whose slots (`slot_count` of them ran or were
/// asked for) failed with `failures`. `jitter` in `[0, 1)` draws the backoff.
pub(crate) fn decide(
    envelope: &Envelope,
    failures: Vec<SlotOutcome>,
    slot_count: usize,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    if failures.is_empty() {
        return Decision::Ack;
    }
    let put = PutOptions {
        priority: policy.priority,
        delay: Duration::ZERO,
        ttr: policy.ttr,
    };
    let permanent = failures.iter().any(|failure| failure.permanent);
    let summary = summarize(&failures);
    let next = Envelope {
        attempt: envelope.attempt.saturating_add(1),
        slots: Some(failures.iter().map(|f| f.slot.clone()).collect()),
        ..envelope.clone()
    };
    let slots = failures
        .into_iter()
        .map(|f| SlotFailure {
            slot: f.slot,
            error: f.error,
        })
        .collect();
    if permanent || envelope.attempt > policy.retries {
        let reason = if permanent {
            format!("permanent failure: {summary}")
        } else {
            let attempts = envelope.attempt;
            let plural = if attempts == 1 { "" } else { "s" };
            format!("failed after {attempts} attempt{plural}: {summary}")
        };
        return Decision::Fail {
            next,
            options: put,
            reason,
            slots,
        };
    }
    let note = format!(
        "retried: {} of {slot_count} slots failed",
        next.slots.as_ref().map_or(0, Vec::len),
    );
    Decision::Retry {
        next,
        options: PutOptions {
            delay: policy.backoff.delay_with(envelope.attempt, jitter),
            ..put
        },
        error: summary,
        note,
        slots,
    }
}

/// The decision for a message whose wire name this worker has no slot for (`reason` says
/// which): retried `retries` times with `backoff` (a newer worker of a rolling deploy may
/// know it), then moved to the failure store. Every slot runs on the next attempt.
pub(crate) fn decide_unknown(
    envelope: &Envelope,
    reason: String,
    retries: u32,
    backoff: Backoff,
    jitter: f64,
) -> Decision {
    let next = Envelope {
        attempt: envelope.attempt.saturating_add(1),
        ..envelope.clone()
    };
    let put = PutOptions::default();
    if envelope.attempt > retries {
        return Decision::Fail {
            next,
            options: put,
            reason,
            slots: Vec::new(),
        };
    }
    Decision::Retry {
        next,
        options: PutOptions {
            delay: backoff.delay_with(envelope.attempt, jitter),
            ..put
        },
        error: reason,
        note: "retried: unknown message".into(),
        slots: Vec::new(),
    }
}

fn summarize(failures: &[SlotOutcome]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.slot, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(attempt: u32) -> Envelope {
        let body = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        Envelope {
            attempt,
            ..Envelope::new("Mail", body)
        }
    }

    fn failed(slot: &str, permanent: bool) -> SlotOutcome {
        SlotOutcome {
            slot: slot.into(),
            error: format!("{slot} broke"),
            permanent,
        }
    }

    const POLICY: Policy = Policy {
        priority: 7,
        ttr: Duration::from_secs(60),
        retries: 2,
        backoff: Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
        },
    };

    #[test]
    fn no_failure_is_an_ack() {
        assert!(matches!(
            decide(&envelope(1), Vec::new(), 2, &POLICY, 0.5),
            Decision::Ack
        ));
    }

    #[test]
    fn a_failure_with_retries_left_retries_only_the_failed_slots_after_the_backoff() {
        let decision = decide(&envelope(2), vec![failed("b", false)], 2, &POLICY, 0.0);
        let Decision::Retry {
            next,
            options,
            error,
            note,
            slots,
        } = decision
        else {
            panic!("not a retry: {decision:?}");
        };
        assert_eq!(next.attempt, 3);
        assert_eq!(next.slots, Some(vec!["b".to_owned()]));
        // Attempt 2 failed: 2 s before jitter, the lower half with jitter 0.
        assert_eq!(options.delay, Duration::from_secs(1));
        assert_eq!(
            (options.priority, options.ttr),
            (7, Duration::from_secs(60))
        );
        assert_eq!(error, "b: b broke");
        assert_eq!(note, "retried: 1 of 2 slots failed");
        assert_eq!((slots[0].slot.as_str(), slots.len()), ("b", 1));
    }

    #[test]
    fn the_last_attempt_fails_with_each_slot_and_the_count() {
        let failures = vec![failed("a", false), failed("b", false)];
        let Decision::Fail {
            next,
            reason,
            slots,
            options,
        } = decide(&envelope(3), failures, 2, &POLICY, 0.5)
        else {
            panic!("not a failure");
        };
        assert_eq!(reason, "failed after 3 attempts: a: a broke; b: b broke");
        assert_eq!(slots.len(), 2);
        assert_eq!(next.attempt, 4);
        assert_eq!(options.delay, Duration::ZERO);
    }

    #[test]
    fn the_next_attempt_keeps_the_headers() {
        let mut first = envelope(1);
        first
            .headers
            .insert("traceparent".into(), "00-ab-cd-01".into());
        let retry = decide(&first, vec![failed("a", false)], 1, &POLICY, 0.5);
        let Decision::Retry { next, .. } = retry else {
            panic!("not a retry: {retry:?}");
        };
        assert_eq!(next.headers, first.headers);
        let unknown = decide_unknown(&first, "no type".into(), 0, POLICY.backoff, 0.5);
        let Decision::Fail { next, .. } = unknown else {
            panic!("not a failure: {unknown:?}");
        };
        assert_eq!(next.headers, first.headers);
    }

    #[test]
    fn a_permanent_error_fails_at_once() {
        let failures = vec![failed("a", false), failed("b", true)];
        let decision = decide(&envelope(1), failures, 2, &POLICY, 0.5);
        assert!(
            matches!(&decision, Decision::Fail { reason, .. } if reason.starts_with("permanent failure: ")),
            "{decision:?}"
        );
    }

    #[test]
    fn an_unknown_name_is_retried_then_failed_with_every_slot_to_run() {
        let backoff = Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        };
        let decision = decide_unknown(&envelope(1), "no type".into(), 1, backoff, 1.0);
        assert!(
            matches!(&decision, Decision::Retry { next, options, .. }
                if next.slots.is_none() && options.delay == Duration::from_secs(5)),
            "{decision:?}"
        );
        let decision = decide_unknown(&envelope(2), "no type".into(), 1, backoff, 1.0);
        assert!(
            matches!(&decision, Decision::Fail { slots, reason, .. } if slots.is_empty() && reason == "no type"),
            "{decision:?}"
        );
    }
}
