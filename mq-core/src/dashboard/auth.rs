//! Who is asking, and whether they may change anything: the operator token (constant-time
//! comparison), the session cookie, the anti-forgery checks of every state-changing request,
//! and signing in and out.
//!
//! A browser signs in by posting the token once; it gets a cookie holding a random
//! per-process session value (never the token), `HttpOnly` and `SameSite=Strict`, scoped to
//! the dashboard's path. A script sends `Authorization: Bearer TOKEN` instead. Every POST
//! from a form must carry the per-process anti-forgery token and must not come from another
//! site (`Sec-Fetch-Site`, `Origin` against `Host`); a bearer request needs neither, since a
//! page of another site cannot set that header without a CORS preflight, which the
//! dashboard never answers.

use std::time::Duration;

use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::error::error_page;
use super::html;
use super::state::AppState;

/// The session cookie's name.
const COOKIE_NAME: &str = "mq_dashboard_session";

/// How long a wrong token makes its sender wait: guessing is slow.
const WRONG_TOKEN_PAUSE: Duration = Duration::from_millis(500);

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The viewer of one request: where the dashboard is mounted, and what they may see and do.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The path the dashboard is mounted under, without a trailing `/` (`""` at the root).
    pub(crate) base: String,
    /// Signed in with the token (cookie or bearer) on a dashboard whose actions are on.
    pub(crate) operator: bool,
    /// Authenticated by `Authorization: Bearer`, not by a cookie.
    pub(crate) bearer: bool,
    /// Whether the dashboard has actions at all (a token and not read-only).
    pub(crate) actions: bool,
    /// Whether the dashboard was started read-only on purpose (not merely without a token).
    pub(crate) read_only: bool,
    /// The anti-forgery token for forms.
    pub(crate) csrf: String,
    /// Whether message bodies may be shown to this viewer.
    pub(crate) bodies: bool,
    /// The backend, for the footer.
    pub(crate) backend: String,
}

impl Viewer {
    /// `path` under the dashboard's base: `link("/failed/3")`.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        super::sampler::ensure_started(state);
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |uri| uri.path().to_owned());
        let base = base_of(&original, &inner);
        let options = &state.options;
        let bearer = options.token.as_deref().is_some_and(|token| {
            bearer_token(&parts.headers)
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
        });
        let cookie = session_cookie(&parts.headers)
            .is_some_and(|value| constant_time_eq(value.as_bytes(), state.session.as_bytes()));
        let operator = options.actions() && (bearer || cookie);
        Ok(Viewer {
            base,
            operator,
            bearer: operator && bearer,
            actions: options.actions(),
            read_only: options.read_only,
            csrf: state.csrf.clone(),
            bodies: options.show_bodies || operator,
            backend: state.transport.describe(),
        })
    }
}

/// The mount path: the original path less the path the router saw (`/admin/q/failed` less
/// `/failed` is `/admin/q`).
fn base_of(original: &str, inner: &str) -> String {
    let base = match original.strip_suffix(inner) {
        Some(base) => base,
        // Nested at `/admin/q`, a request for `/admin/q` reaches the router as `/`.
        None if inner == "/" => original,
        None => "",
    };
    base.trim_end_matches('/').to_owned()
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// Why a state-changing request is refused, as a status and a sentence.
pub(crate) fn refusal(viewer: &Viewer) -> Option<(StatusCode, String)> {
    if viewer.read_only {
        return Some((
            StatusCode::FORBIDDEN,
            "this dashboard is read-only (started with --read-only): nothing can be changed here"
                .into(),
        ));
    }
    if !viewer.actions {
        return Some((
            StatusCode::FORBIDDEN,
            "this dashboard has no operator token, so nothing can be changed here: start it \
             with MQ_DASHBOARD_TOKEN set"
                .into(),
        ));
    }
    if !viewer.operator {
        return Some((
            StatusCode::UNAUTHORIZED,
            "this needs the operator token: sign in with MQ_DASHBOARD_TOKEN first".into(),
        ));
    }
    None
}

/// Whether a request with `headers` and the form field `csrf` may change state: `Err` with
/// the status and why not. A bearer request skips the anti-forgery checks.
pub(crate) fn check_forgery(
    viewer: &Viewer,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(), (StatusCode, String)> {
    if viewer.bearer {
        return Ok(());
    }
    let refused = |why: &str| Err((StatusCode::FORBIDDEN, why.to_owned()));
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return refused("cross-site request refused: the form must come from this dashboard");
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        if host.is_none() || origin_host != host {
            return refused("cross-origin request refused: the form must come from this dashboard");
        }
    }
    match csrf {
        Some(given) if constant_time_eq(given.as_bytes(), viewer.csrf.as_bytes()) => Ok(()),
        _ => refused(
            "the form's anti-forgery token is missing or stale (the dashboard restarted?): \
             reload the page and try again",
        ),
    }
}

/// The form of `POST /login`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    csrf: Option<String>,
}

/// `GET /login`: the form.
pub(crate) async fn login_page(viewer: Viewer) -> Response {
    if let Some((status, why)) = refusal(&viewer).filter(|(s, _)| *s == StatusCode::FORBIDDEN) {
        return error_page(&viewer, status, "Nothing to sign in to", &why);
    }
    html::page(&viewer, "Sign in", None, html::login_form(&viewer, None)).into_response()
}

/// `POST /login`: checks the token, sets the session cookie, back to the overview.
pub(crate) async fn login(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some((status, why)) = refusal(&viewer).filter(|(s, _)| *s == StatusCode::FORBIDDEN) {
        return error_page(&viewer, status, "Nothing to sign in to", &why);
    }
    if let Err((status, why)) = check_forgery(&viewer, &headers, form.csrf.as_deref()) {
        return error_page(&viewer, status, "Refused", &why);
    }
    let right = state
        .options
        .token
        .as_deref()
        .is_some_and(|token| constant_time_eq(form.token.as_bytes(), token.as_bytes()));
    if !right {
        tokio::time::sleep(WRONG_TOKEN_PAUSE).await;
        let form = html::login_form(&viewer, Some("That is not the operator token."));
        let page = html::page(&viewer, "Sign in", None, form);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let cookie = format!(
        "{COOKIE_NAME}={}; Path={}/; HttpOnly; SameSite=Strict",
        state.session, viewer.base
    );
    with_cookie(Redirect::to(&viewer.link("/")), &cookie)
}

/// `POST /logout`: forgets the session cookie.
pub(crate) async fn logout(
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err((status, why)) = check_forgery(&viewer, &headers, form.csrf.as_deref()) {
        return error_page(&viewer, status, "Refused", &why);
    }
    let cookie = format!(
        "{COOKIE_NAME}=; Path={}/; HttpOnly; SameSite=Strict; Max-Age=0",
        viewer.base
    );
    with_cookie(Redirect::to(&viewer.link("/")), &cookie)
}

/// A form that carries only the anti-forgery token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: Option<String>,
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut response = redirect.into_response();
    // The session value is hex and the base a path the router matched: a valid header.
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn finds_the_mount_path() {
        assert_eq!(base_of("/failed/3", "/failed/3"), "");
        assert_eq!(base_of("/admin/q/failed/3", "/failed/3"), "/admin/q");
        assert_eq!(base_of("/admin/q", "/"), "/admin/q");
        assert_eq!(base_of("/admin/q/", "/"), "/admin/q");
        assert_eq!(base_of("/", "/"), "");
    }
}
