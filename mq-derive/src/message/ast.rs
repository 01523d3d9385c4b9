//! The parsed form of a message type and its `#[message(...)]` options, checked as they are
//! read. Every bad key is reported at once, each at its own span.

use std::time::Duration;

use syn::meta::ParseNestedMeta;
use syn::{Data, DeriveInput, Ident, LitInt, LitStr};

use crate::{duration, symbol};

/// A message type whose options are all valid.
pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) options: Options,
}

/// The options as written; `None` where the default applies.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<u32>,
    pub(crate) delay: Option<Duration>,
    pub(crate) ttr: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) backoff_max: Option<Duration>,
}

/// Collects errors so that all are reported, then combines them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Input<'a>> {
        let mut errors = Errors::default();
        if let Data::Union(data) = &input.data {
            errors.push(syn::Error::new(
                data.union_token.span,
                "#[derive(mq::Message)] supports structs and enums, not unions",
            ));
        }
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &input.generics,
                "#[derive(mq::Message)] does not support generic types: a wire name must name \
                 one concrete type; define a concrete type for each message instead",
            ));
        }
        let mut options = Options::default();
        for attr in input
            .attrs
            .iter()
            .filter(|a| a.path().is_ident(symbol::MESSAGE))
        {
            let parsed = attr.parse_nested_meta(|meta| {
                if let Err(error) = options.read(&meta) {
                    errors.push(error);
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        errors.finish()?;
        Ok(Input {
            ident: &input.ident,
            options,
        })
    }
}

/// Consumes `= value` after a key that was refused, so that the next key is still read.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    }
    Ok(())
}

impl Options {
    fn read(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        match key.as_str() {
            symbol::NAME => set(meta, &mut self.name, read_name(meta)?),
            symbol::QUEUE => set(meta, &mut self.queue, read_queue(meta)?),
            symbol::PRIORITY => set(meta, &mut self.priority, read_u32(meta, "priority = 100")?),
            symbol::DELAY => set(meta, &mut self.delay, read_duration(meta, false)?),
            symbol::TTR => set(meta, &mut self.ttr, read_ttr(meta)?),
            symbol::TIMEOUT => set(meta, &mut self.timeout, read_duration(meta, true)?),
            symbol::RETRIES => set(meta, &mut self.retries, read_u32(meta, "retries = 5")?),
            symbol::BACKOFF => set(meta, &mut self.backoff, read_duration(meta, true)?),
            symbol::BACKOFF_MAX => set(meta, &mut self.backoff_max, read_duration(meta, true)?),
            _ => Err(meta.error(format!(
                "unknown `#[message]` key `{}`; valid keys are {}",
                path_text(&meta.path),
                symbol::ALL.map(|k| format!("`{k}`")).join(", ")
            ))),
        }
    }
}

fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

fn set<T>(meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!(
            "duplicate `#[message]` key `{}`; give it once",
            path_text(&meta.path)
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn read_str(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<LitStr> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal, e.g. `{example}`"),
        )),
    }
}

fn read_name(meta: &ParseNestedMeta<'_>) -> syn::Result<String> {
    let lit = read_str(meta, "name = \"OrderPlaced\"")?;
    let name = lit.value();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(syn::Error::new(
            lit.span(),
            "a wire name must be non-empty text without control characters",
        ));
    }
    Ok(name)
}

fn read_queue(meta: &ParseNestedMeta<'_>) -> syn::Result<String> {
    let lit = read_str(meta, "queue = \"emails\"")?;
    let queue = lit.value();
    // beanstalkd's tube names are the strictest of the backends: hold every queue to them.
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-+/;.$_()".contains(c);
    if queue.is_empty()
        || queue.len() > 200
        || queue.starts_with('-')
        || !queue.chars().all(allowed)
    {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{queue}` is not a valid queue name: use 1 to 200 letters, digits and \
                 `-+/;.$_()`, not starting with `-`"
            ),
        ));
    }
    Ok(queue)
}

fn read_u32(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<u32> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(lit),
            ..
        }) => parse_u32(&lit),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a whole number from 0 to 4294967295, e.g. `{example}`"),
        )),
    }
}

fn parse_u32(lit: &LitInt) -> syn::Result<u32> {
    lit.base10_parse::<u32>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{}` is out of range: expected a whole number from 0 to 4294967295",
                lit
            ),
        )
    })
}

fn read_duration(meta: &ParseNestedMeta<'_>, nonzero: bool) -> syn::Result<Duration> {
    let lit = read_str(meta, "ttr = \"2m\"")?;
    let duration = duration::parse(&lit)?;
    if nonzero && duration.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{}` must be longer than zero", path_text(&meta.path)),
        ));
    }
    Ok(duration)
}

fn read_ttr(meta: &ParseNestedMeta<'_>) -> syn::Result<Duration> {
    let lit = read_str(meta, "ttr = \"2m\"")?;
    let ttr = duration::parse(&lit)?;
    if ttr < Duration::from_secs(1) {
        return Err(syn::Error::new(
            lit.span(),
            "`ttr` must be at least 1s: queue servers count it in whole seconds",
        ));
    }
    Ok(ttr)
}
