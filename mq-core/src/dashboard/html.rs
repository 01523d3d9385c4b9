//! The page shell and the small pieces every page uses, on `maud`.
//!
//! `maud` was chosen because its `html!` escapes every interpolated value by default: a
//! body, an error text, a queue or slot name is text in the page whatever it holds, and
//! raw HTML would need a visible `PreEscaped`, which this module never applies to data
//! (only to the embedded assets). It renders at compile time into plain string building,
//! with no template files to ship.

use std::time::SystemTime;

use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::auth::Viewer;
use super::state::Outage;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

/// Which item of the navigation is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Failures,
    Routes,
}

/// A whole page: head, navigation, the outage banner (if any), `body`, footer.
pub(crate) fn page(viewer: &Viewer, title: &str, here: Option<Nav>, body: Markup) -> Html<String> {
    page_with(viewer, title, here, None, body)
}

/// [`page`] with an outage banner.
pub(crate) fn page_with(
    viewer: &Viewer,
    title: &str,
    here: Option<Nav>,
    outage: Option<&Outage>,
    body: Markup,
) -> Html<String> {
    let item = |nav: Nav, path: &str, label: &str| {
        html! { a href=(viewer.link(path)) class=[(here == Some(nav)).then_some("here")] { (label) } }
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mq" }
                link rel="stylesheet" href=(viewer.link("/assets/style.css"));
                script defer src=(viewer.link("/assets/live.js")) {}
            }
            body {
                header.top {
                    a.brand href=(viewer.link("/")) { "mq" }
                    nav {
                        (item(Nav::Overview, "/", "Queues"))
                        (item(Nav::Failures, "/failed", "Failures"))
                        (item(Nav::Routes, "/routes", "Routes"))
                    }
                    (who(viewer))
                }
                div #banner { @if let Some(outage) = outage { (banner(outage)) } }
                main { (body) }
                footer { "backend: " code { (viewer.backend) } }
            }
        }
    };
    Html(page.into_string())
}

/// The outage banner.
pub(crate) fn banner(outage: &Outage) -> Markup {
    html! {
        div.banner.outage role="alert" {
            "The backend does not answer: " (outage.0)
            ". What could be read is shown; the page recovers by itself when the backend is back."
        }
    }
}

/// Who the viewer is, top right: read-only, signed in (with sign out), or sign in.
fn who(viewer: &Viewer) -> Markup {
    html! {
        span.who {
            @if !viewer.actions {
                span.tag.ro title="no operator token, or --read-only: nothing can be changed" { "read-only" }
            } @else if viewer.operator {
                span.tag.ok { "operator" }
                @if !viewer.bearer {
                    form.inline method="post" action=(viewer.link("/logout")) {
                        (csrf_field(viewer))
                        button.secondary type="submit" { "Sign out" }
                    }
                }
            } @else {
                a href=(viewer.link("/login")) { "Sign in to act" }
            }
        }
    }
}

/// The hidden anti-forgery field of a form.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// The sign-in form, with an error line.
pub(crate) fn login_form(viewer: &Viewer, error: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        div.panel {
            p { "Retry, remove and flush need the operator token (" code { "MQ_DASHBOARD_TOKEN" } ")." }
            @if let Some(error) = error { p.note { (error) } }
            form method="post" action=(viewer.link("/login")) {
                (csrf_field(viewer))
                input type="password" name="token" autocomplete="current-password" placeholder="token" required;
                " "
                button type="submit" { "Sign in" }
            }
        }
    }
}

/// A time as RFC 3339 (UTC, seconds) with how long ago.
pub(crate) fn time(at: SystemTime) -> Markup {
    let exact = humantime::format_rfc3339_seconds(at).to_string();
    let ago = SystemTime::now()
        .duration_since(at)
        .map(|d| format!("{} ago", short_duration(d.as_secs())))
        .unwrap_or_else(|_| "just now".to_owned());
    html! { time datetime=(exact) title=(exact) { (exact) " " span.muted { "(" (ago) ")" } } }
}

/// `42s`, `5m`, `3h`, `2d`.
pub(crate) fn short_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `GET /assets/style.css`.
pub(crate) async fn style() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `GET /assets/live.js`.
pub(crate) async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_on_characters() {
        assert_eq!(clip("héllo", 3), "hél…");
        assert_eq!(clip("hi", 3), "hi");
    }

    #[test]
    fn interpolation_escapes() {
        let text = "<script>alert(1)</script>";
        let markup = html! { p { (text) } a href=(text) {} };
        let out = markup.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }
}
