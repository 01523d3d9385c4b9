//! The overview (`/`): every queue with its counts, updated live from `/live`, and the last
//! hour's chart; `/api/stats` gives the counts as JSON.

use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::Notice;
use crate::dashboard::auth::Viewer;
use crate::dashboard::chart;
use crate::dashboard::html::{self, Nav};
use crate::dashboard::search::{encode, SCAN_LIMIT};
use crate::dashboard::state::{AppState, Outage};
use crate::transport::QueueStats;

/// The queues to show: the backend's, plus the routing table's that it does not list yet.
async fn queues(state: &AppState) -> Result<Vec<QueueStats>, Outage> {
    let mut stats = state.stats().await?;
    if let Some(registry) = &state.options.registry {
        for queue in registry.queues() {
            if !stats.iter().any(|q| q.queue == queue) {
                stats.push(QueueStats::new(queue));
            }
        }
    }
    stats.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(stats)
}

/// The live part: the outage banner, the totals, the table of queues.
fn live(viewer: &Viewer, stats: &Result<Vec<QueueStats>, Outage>) -> Markup {
    let empty = Vec::new();
    let (outage, queues) = match stats {
        Ok(queues) => (None, queues),
        Err(outage) => (Some(outage), &empty),
    };
    let total = |f: fn(&QueueStats) -> u64| queues.iter().map(f).sum::<u64>();
    html! {
        @if let Some(outage) = outage { (html::banner(outage)) }
        div.cards {
            div.card { div.label { "ready" } div.n #total-ready { (total(|q| q.ready)) } }
            div.card { div.label { "reserved" } div.n #total-reserved { (total(|q| q.reserved)) } }
            div.card { div.label { "delayed" } div.n #total-delayed { (total(|q| q.delayed)) } }
            div.card.failed { div.label { "failed" } div.n #total-failed { (total(|q| q.failed)) } }
        }
        table #queues {
            thead { tr {
                th { "Queue" } th.num { "Ready" } th.num { "Reserved" } th.num { "Delayed" } th.num { "Failed" }
            } }
            tbody {
                @if queues.is_empty() && outage.is_none() {
                    tr { td colspan="5" .muted { "No queues yet: nothing was dispatched to this backend." } }
                }
                @for q in queues {
                    tr data-queue=(q.queue) {
                        td { a href=(viewer.link(&format!("/queues/{}", encode(&q.queue)))) { (q.queue) } }
                        td.num.ready { (q.ready) }
                        td.num.reserved { (q.reserved) }
                        td.num.delayed { (q.delayed) }
                        td.num.failed.bad[q.failed > 0] {
                            @if q.failed > 0 {
                                a href=(viewer.link(&format!("/failed?queue={}", encode(&q.queue)))) { (q.failed) }
                            } @else { "0" }
                        }
                    }
                }
            }
        }
    }
}

fn status_of<T>(result: &Result<T, Outage>) -> StatusCode {
    if result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(notice): Query<Notice>,
) -> Response {
    let stats = queues(&state).await;
    // Failure times for the chart; without them (an outage) the chart shows none.
    let failed_at: Vec<SystemTime> = if stats.is_ok() {
        let store = state.transport.failure_store();
        state
            .call("failure list", store.list(None, SCAN_LIMIT))
            .await
            .map(|list| list.iter().map(|f| f.failure.failed_at).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let samples: Vec<_> = state.history().samples.iter().copied().collect();
    let minutes = chart::minutes(SystemTime::now(), &samples, &failed_at);
    let status = status_of(&stats);
    let body = html! {
        (notice.markup())
        h1 { "Queues" }
        div #live data-live=(viewer.link("/live")) { (live(&viewer, &stats)) }
        p #live-status { "live: counts refresh every two seconds" }
        h2 { "Last hour" }
        (chart::svg(&minutes))
        p.muted {
            "Done per minute is estimated from the backlog sampled every "
            (humantime::format_duration(state.options.sample_every))
            " since the dashboard started (a lower bound); failures come from the failure store's timestamps."
        }
    };
    (
        status,
        html::page(&viewer, "Queues", Some(Nav::Overview), body),
    )
        .into_response()
}

/// `GET /live`: the live part of the overview, for the page's script.
pub(crate) async fn fragment(State(state): State<AppState>, viewer: Viewer) -> Response {
    let stats = queues(&state).await;
    (status_of(&stats), Html(live(&viewer, &stats).into_string())).into_response()
}

/// `GET /api/stats`: `{"queues": [...]}`, or 503 with `{"error": "..."}`.
pub(crate) async fn api(State(state): State<AppState>) -> Response {
    let (status, json) = match queues(&state).await {
        Ok(queues) => (StatusCode::OK, serde_json::json!({ "queues": queues })),
        Err(outage) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": outage.0 }),
        ),
    };
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}
