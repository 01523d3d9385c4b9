//! What changes state, each a POST behind the token and the anti-forgery checks: retry or
//! remove one failed message, retry or remove every one that matches a search, flush a
//! queue. Each answers with a redirect to the page that shows the result.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::auth::{check_forgery, refusal, CsrfForm, Viewer};
use super::error::{error_page, not_found};
use super::pages::Notice;
use super::search::{self, encode, Search, SCAN_LIMIT};
use super::state::{AppState, Outage};
use crate::Error;

/// The refusal page, unless the viewer is a signed-in operator and the request is not
/// forged.
fn refused(viewer: &Viewer, headers: &HeaderMap, csrf: Option<&str>) -> Option<Response> {
    let (status, why) = refusal(viewer).or_else(|| check_forgery(viewer, headers, csrf).err())?;
    Some(error_page(viewer, status, "Refused", &why))
}

fn outage_page(viewer: &Viewer, outage: &Outage) -> Response {
    error_page(
        viewer,
        StatusCode::SERVICE_UNAVAILABLE,
        "The backend does not answer",
        &format!(
            "Nothing was changed, or not all: {}. Try again when it is back.",
            outage.0
        ),
    )
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Retry,
    Remove,
}

impl Op {
    fn done(self) -> &'static str {
        match self {
            Op::Retry => "retried",
            Op::Remove => "removed",
        }
    }

    /// Applies the operation to entry `id`: `Ok(false)` when it is not (or no longer) there.
    async fn apply(self, state: &AppState, id: u64) -> Result<bool, Outage> {
        let store = state.transport.failure_store();
        match self {
            Op::Retry => {
                let retried = async {
                    match store.retry(id).await {
                        Ok(_) => Ok(true),
                        Err(Error::NotFound(_)) => Ok(false),
                        Err(error) => Err(error),
                    }
                };
                state.call("failure retry", retried).await
            }
            Op::Remove => state.call("failure remove", store.remove(id)).await,
        }
    }
}

async fn one(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    id: String,
    csrf: Option<String>,
    op: Op,
) -> Response {
    if let Some(refused) = refused(&viewer, &headers, csrf.as_deref()) {
        return refused;
    }
    let Ok(number) = id.parse::<u64>() else {
        return not_found(
            &viewer,
            &format!("There is no failed message with id {id}."),
        );
    };
    match op.apply(&state, number).await {
        Ok(true) => Redirect::to(&viewer.link(&format!("/failed?{}", Notice::query(op.done(), 1))))
            .into_response(),
        Ok(false) => not_found(
            &viewer,
            &format!("There is no failed message with id {number} (retried or removed already?)."),
        ),
        Err(outage) => outage_page(&viewer, &outage),
    }
}

/// `POST /failed/{id}/retry`.
pub(crate) async fn retry_one(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    one(state, viewer, headers, id, form.csrf, Op::Retry).await
}

/// `POST /failed/{id}/remove`.
pub(crate) async fn remove_one(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    one(state, viewer, headers, id, form.csrf, Op::Remove).await
}

/// The form of the bulk actions: the search, and the anti-forgery token.
#[derive(Debug, Deserialize)]
pub(crate) struct BulkForm {
    csrf: Option<String>,
    #[serde(flatten)]
    search: Search,
}

async fn matching(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    form: BulkForm,
    op: Op,
) -> Response {
    if let Some(refused) = refused(&viewer, &headers, form.csrf.as_deref()) {
        return refused;
    }
    let store = state.transport.failure_store();
    let listed = match state
        .call("failure list", store.list(None, SCAN_LIMIT))
        .await
    {
        Ok(listed) => listed,
        Err(outage) => return outage_page(&viewer, &outage),
    };
    drop(store);
    let ids: Vec<u64> = listed
        .into_iter()
        .map(search::Entry::new)
        .filter(|entry| form.search.matches(entry))
        .map(|entry| entry.failed.id)
        .collect();
    let mut done = 0;
    for id in ids {
        match op.apply(&state, id).await {
            Ok(true) => done += 1,
            // Gone meanwhile (another operator): not an error for a bulk action.
            Ok(false) => {}
            Err(outage) => return outage_page(&viewer, &outage),
        }
    }
    let query = form.search.query();
    let sep = if query.is_empty() { "" } else { "&" };
    let notice = Notice::query(op.done(), done);
    Redirect::to(&viewer.link(&format!("/failed?{query}{sep}{notice}"))).into_response()
}

/// `POST /failed/retry`: every entry matching the form's search.
pub(crate) async fn retry_matching(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Response {
    matching(state, viewer, headers, form, Op::Retry).await
}

/// `POST /failed/remove`: every entry matching the form's search.
pub(crate) async fn remove_matching(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Response {
    matching(state, viewer, headers, form, Op::Remove).await
}

/// `POST /queues/{name}/flush`.
pub(crate) async fn flush(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refused(&viewer, &headers, form.csrf.as_deref()) {
        return refused;
    }
    match state.call("flush", state.transport.flush(&name)).await {
        Ok(n) => {
            let to = format!("/queues/{}?{}", encode(&name), Notice::query("flushed", n));
            Redirect::to(&viewer.link(&to)).into_response()
        }
        Err(outage) => outage_page(&viewer, &outage),
    }
}
