//! The last hour as an inline SVG chart: per minute, messages done (estimated from the
//! sampled backlog, see [`sampler`](super::sampler)) and failures (from the failure store's
//! timestamps), with the backlog as a line.

use std::time::{Duration, SystemTime};

use maud::{html, Markup};

use super::sampler::Sample;

const MINUTES: usize = 60;
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;

/// Per minute of the last hour, oldest first.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Minutes {
    /// Backlog that went away (a lower bound on the messages finished).
    pub(crate) done: Vec<u64>,
    /// Messages moved to the failure store.
    pub(crate) failed: Vec<u64>,
    /// The last backlog sampled in that minute, if any.
    pub(crate) backlog: Vec<Option<u64>>,
}

/// The minute (0 = oldest, 59 = the current one) of `at`, if within the hour before `now`.
fn minute_of(now: SystemTime, at: SystemTime) -> Option<usize> {
    let age = now.duration_since(at).unwrap_or(Duration::ZERO).as_secs();
    let back = usize::try_from(age / 60).ok()?;
    (back < MINUTES).then(|| MINUTES - 1 - back)
}

/// Buckets the samples and the failure times into minutes before `now`.
pub(crate) fn minutes(now: SystemTime, samples: &[Sample], failed_at: &[SystemTime]) -> Minutes {
    let mut out = Minutes {
        done: vec![0; MINUTES],
        failed: vec![0; MINUTES],
        backlog: vec![None; MINUTES],
    };
    for pair in samples.windows(2) {
        if let Some(minute) = minute_of(now, pair[1].at) {
            out.done[minute] += pair[0].backlog.saturating_sub(pair[1].backlog);
        }
    }
    for sample in samples {
        if let Some(minute) = minute_of(now, sample.at) {
            out.backlog[minute] = Some(sample.backlog);
        }
    }
    for &at in failed_at {
        if let Some(minute) = minute_of(now, at) {
            out.failed[minute] += 1;
        }
    }
    out
}

/// The chart of `minutes`.
pub(crate) fn svg(minutes: &Minutes) -> Markup {
    let bar_top = minutes
        .done
        .iter()
        .zip(&minutes.failed)
        .map(|(d, f)| d + f)
        .max()
        .unwrap_or(0)
        .max(1);
    let line_top = minutes
        .backlog
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 10.0;
    let plot_h = HEIGHT - BOTTOM - 10.0;
    let slot = plot_w / MINUTES as f64;
    let y = |value: u64, top: u64| 10.0 + plot_h * (1.0 - value as f64 / top as f64);
    let points: Vec<String> = minutes
        .backlog
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            b.map(|b| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot * (i as f64 + 0.5),
                    y(b, line_top)
                )
            })
        })
        .collect();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label="messages done, failed and backlog per minute over the last hour" {
            line.axis x1=(LEFT) y1=(10) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - 10.0) y2=(HEIGHT - BOTTOM) {}
            text x=(LEFT - 6.0) y=(14) text-anchor="end" { (bar_top) }
            text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            text x=(LEFT) y=(HEIGHT - 4.0) { "60 min ago" }
            text x=(WIDTH - 10.0) y=(HEIGHT - 4.0) text-anchor="end" { "now" }
            @for (i, (&done, &failed)) in minutes.done.iter().zip(&minutes.failed).enumerate() {
                @let x = LEFT + slot * i as f64 + 1.0;
                @if done > 0 {
                    rect.done x=(format!("{x:.1}")) y=(format!("{:.1}", y(done + failed, bar_top)))
                        width=(format!("{:.1}", slot - 2.0))
                        height=(format!("{:.1}", plot_h * done as f64 / bar_top as f64)) {
                        title { (done) " done (at least), " (60 - i) " min ago" }
                    }
                }
                @if failed > 0 {
                    rect.fail x=(format!("{x:.1}")) y=(format!("{:.1}", y(failed, bar_top)))
                        width=(format!("{:.1}", slot - 2.0))
                        height=(format!("{:.1}", plot_h * failed as f64 / bar_top as f64)) {
                        title { (failed) " failed, " (60 - i) " min ago" }
                    }
                }
            }
            @if points.len() > 1 {
                polyline.backlog points=(points.join(" ")) {
                    title { "backlog (ready + reserved + delayed), peak " (line_top) }
                }
            }
        }
        div.legend {
            span { i style="background: var(--good)" {} "done per minute (at least)" }
            span { i style="background: var(--bad)" {} "failed per minute" }
            span { i style="background: var(--accent)" {} "backlog (peak " (line_top) ")" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_minute() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let at = |secs_ago: u64| now - Duration::from_secs(secs_ago);
        let samples = [
            Sample {
                at: at(130),
                backlog: 10,
            },
            Sample {
                at: at(70),
                backlog: 4,
            },
            Sample {
                at: at(5),
                backlog: 6,
            },
        ];
        let m = minutes(now, &samples, &[at(10), at(20), at(4000)]);
        assert_eq!(m.done[58], 6);
        assert_eq!(m.done[59], 0);
        assert_eq!(m.failed[59], 2);
        assert_eq!(m.failed.iter().sum::<u64>(), 2);
        assert_eq!(m.backlog[59], Some(6));
        let svg = svg(&m).into_string();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("polyline"), "{svg}");
    }
}
