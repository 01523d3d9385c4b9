//! The parsed form of a message type and its `#[message(...)]` options, checked as they are
//! read. Every bad key is reported at once, each at its own span.

use std::time::Duration;

use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Ident, LitInt, LitStr};

use super::keys;
use super::limits::Limit;
use super::versions::{self, Versions};
use crate::errors::Errors;
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
    /// The fields of a unique message's key (`unique = "order_id"`).
    pub(crate) unique: Option<keys::KeyFields>,
    /// How long its key stays taken after a message ended (`unique_for = "10m"`).
    pub(crate) unique_for: Option<Duration>,
    /// The path of mq-core in the user's crate (`crate = "my_mq"`).
    pub(crate) krate: Option<syn::Path>,
    /// `version = N` and `previous(...)`.
    pub(crate) versions: Versions,
    /// Where `unique_for` was written, for the error when `unique` is missing.
    unique_for_span: Option<proc_macro2::Span>,
    /// A recurring message's cron expression (`schedule = "0 */5 * * * *"`), and the
    /// literal's span (the `Default` check points there).
    pub(crate) schedule: Option<(String, proc_macro2::Span)>,
    /// Its time zone (`schedule_zone = "Europe/Berlin"`).
    pub(crate) schedule_zone: Option<String>,
    schedule_zone_span: Option<proc_macro2::Span>,
    /// `concurrency = N` and `concurrency_key = "..."`.
    pub(crate) concurrency: Limit,
    /// `rate_limit = R` and `rate_key = "..."`.
    pub(crate) rate: Limit,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Input<'a>> {
        let mut errors = Errors::default();
        if let Data::Union(data) = &input.data {
            errors.push(syn::Error::new(
                data.union_token.span,
                "#[derive(mq::Message)] does not support unions: make it a struct or an enum",
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
            if !matches!(attr.meta, syn::Meta::List(_)) {
                errors.push(syn::Error::new_spanned(
                    &attr.meta,
                    "`#[message]` takes a list of options, e.g. `#[message(queue = \"emails\")]`",
                ));
                continue;
            }
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
        options.versions.check(&mut errors);
        if let Some(fields) = &options.unique {
            if let Err(error) = keys::check(input, fields) {
                errors.push(error);
            }
        } else if let Some(span) = options.unique_for_span {
            errors.push(syn::Error::new(
                span,
                "`unique_for` is how long a unique message's key stays taken: add the fields \
                 of the key, e.g. `unique = \"order_id\"`",
            ));
        }
        let limits = [
            (&options.concurrency, symbol::CONCURRENCY, "concurrency = 2"),
            (&options.rate, symbol::RATE_LIMIT, "rate_limit = 50"),
        ];
        for (limit, key, example) in limits {
            limit.check(input, key, example, &mut errors);
        }
        if let (None, Some(span)) = (&options.schedule, options.schedule_zone_span) {
            errors.push(syn::Error::new(
                span,
                "`schedule_zone` is the time zone of a recurring message's cron expression: \
                 add the expression, e.g. `schedule = \"0 0 9 * * *\"`",
            ));
        }
        errors.finish(Input {
            ident: &input.ident,
            options,
        })
    }
}

/// The `crate = "..."` of `input`'s `#[message(...)]`, read past any other mistake: the
/// stub impl of a refused type must name mq as the user's crate does.
pub(crate) fn krate_of(input: &DeriveInput) -> Option<syn::Path> {
    let mut found = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident(symbol::MESSAGE))
    {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(symbol::CRATE) {
                if let Ok(syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                })) = meta.value().and_then(|v| v.parse::<syn::Expr>())
                {
                    found = crate::krate::read(&lit).ok();
                }
                return Ok(());
            }
            skip_value(&meta)
        });
    }
    found
}

/// Consumes the value after a key that was refused (`= value` or `(...)`), so that the next
/// key is still read.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
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
            symbol::PRIORITY => set(meta, &mut self.priority, read_u32(meta, "100", 0)?),
            symbol::DELAY => set(meta, &mut self.delay, read_duration(meta, "30s", false)?),
            symbol::TTR => set(meta, &mut self.ttr, read_ttr(meta)?),
            symbol::TIMEOUT => set(meta, &mut self.timeout, read_duration(meta, "90s", true)?),
            symbol::RETRIES => set(meta, &mut self.retries, read_u32(meta, "5", 0)?),
            symbol::BACKOFF => set(meta, &mut self.backoff, read_duration(meta, "2s", true)?),
            symbol::BACKOFF_MAX => set(
                meta,
                &mut self.backoff_max,
                read_duration(meta, "10m", true)?,
            ),
            symbol::VERSION => set(
                meta,
                &mut self.versions.current,
                versions::read_version(meta)?,
            ),
            symbol::PREVIOUS => set(
                meta,
                &mut self.versions.previous,
                versions::read_previous(meta)?,
            ),
            symbol::UNIQUE => {
                let lit = read_str(meta, "unique = \"order_id\"")?;
                set(meta, &mut self.unique, keys::read(&lit, &keys::UNIQUE)?)
            }
            symbol::CONCURRENCY => {
                self.concurrency.written = true;
                let limit = read_u32(meta, "2", 1)?;
                set(meta, &mut self.concurrency.value, limit)
            }
            symbol::CONCURRENCY_KEY => {
                self.concurrency.key_span = Some(meta.path.span());
                let lit = read_str(meta, "concurrency_key = \"customer_id\"")?;
                let fields = keys::read(&lit, &keys::CONCURRENCY)?;
                set(meta, &mut self.concurrency.key, fields)
            }
            symbol::RATE_LIMIT => {
                self.rate.written = true;
                set(meta, &mut self.rate.value, read_u32(meta, "50", 1)?)
            }
            symbol::RATE_KEY => {
                self.rate.key_span = Some(meta.path.span());
                let lit = read_str(meta, "rate_key = \"customer_id\"")?;
                set(meta, &mut self.rate.key, keys::read(&lit, &keys::RATE)?)
            }
            symbol::UNIQUE_FOR => {
                self.unique_for_span = Some(meta.path.span());
                let hold = read_duration(meta, "10m", false)?;
                set(meta, &mut self.unique_for, hold)
            }
            symbol::SCHEDULE => {
                let lit = read_str(meta, "schedule = \"0 */5 * * * *\"")?;
                let expr = super::schedule::read_cron(&lit)?;
                set(meta, &mut self.schedule, (expr, lit.span()))
            }
            symbol::SCHEDULE_ZONE => {
                self.schedule_zone_span = Some(meta.path.span());
                let lit = read_str(meta, "schedule_zone = \"Europe/Berlin\"")?;
                let zone = super::schedule::read_zone(&lit)?;
                set(meta, &mut self.schedule_zone, zone)
            }
            symbol::CRATE => {
                let lit = read_str(meta, "crate = \"my_mq\"")?;
                set(meta, &mut self.krate, crate::krate::read(&lit)?)
            }
            _ => Err(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "unknown `#[message]` key `{}`; valid keys are {}",
                    path_text(&meta.path),
                    symbol::ALL.map(|k| format!("`{k}`")).join(", ")
                ),
            )),
        }
    }
}

fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

fn set<T>(meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!(
                "duplicate `#[message]` key `{}`: give it once",
                path_text(&meta.path)
            ),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// The value after `key =`, or an error at the key that shows how to write one.
pub(super) fn value(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<syn::Expr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!(
                "`#[message]` key `{}` needs a value, e.g. `{example}`",
                path_text(&meta.path)
            ),
        ));
    }
    meta.value()?.parse()
}

fn read_str(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<LitStr> {
    match value(meta, example)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`{}` takes a string literal, e.g. `{example}`",
                path_text(&meta.path)
            ),
        )),
    }
}

fn read_name(meta: &ParseNestedMeta<'_>) -> syn::Result<String> {
    let lit = read_str(meta, "name = \"OrderPlaced\"")?;
    let name = lit.value();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(syn::Error::new(
            lit.span(),
            "a wire name must be non-empty text without control characters, \
             e.g. `name = \"OrderPlaced\"`",
        ));
    }
    Ok(name)
}

fn read_queue(meta: &ParseNestedMeta<'_>) -> syn::Result<String> {
    let lit = read_str(meta, "queue = \"emails\"")?;
    let queue = lit.value();
    if !is_valid_queue(&queue) {
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

/// beanstalkd's tube names are the strictest of the backends: every queue is held to them.
fn is_valid_queue(queue: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-+/;.$_()".contains(c);
    !queue.is_empty() && queue.len() <= 200 && !queue.starts_with('-') && queue.chars().all(allowed)
}

/// A whole number from `min` (0, or 1 for a limit: a limit of 0 would never run a message).
fn read_u32(meta: &ParseNestedMeta<'_>, example: &str, min: u32) -> syn::Result<u32> {
    let key = path_text(&meta.path);
    let example = format!("{key} = {example}");
    match value(meta, &example)? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(lit),
            ..
        }) => match parse_u32(&key, &lit, min)? {
            0 if min > 0 => Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{key} = 0` would never run a message: write a limit of 1 or more, \
                     e.g. `{example}`, or leave `{key}` out for no limit"
                ),
            )),
            n => Ok(n),
        },
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a whole number from {min} to 4294967295, e.g. `{example}`"),
        )),
    }
}

fn parse_u32(key: &str, lit: &LitInt, min: u32) -> syn::Result<u32> {
    lit.base10_parse::<u32>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{key} = {lit}` is out of range: write a whole number from {min} to 4294967295"
            ),
        )
    })
}

fn read_duration(
    meta: &ParseNestedMeta<'_>,
    example: &str,
    nonzero: bool,
) -> syn::Result<Duration> {
    let key = path_text(&meta.path);
    let lit = read_str(meta, &format!("{key} = \"{example}\""))?;
    let duration = duration::parse(&key, &lit, example)?;
    if nonzero && duration.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{key}` must be longer than zero: write e.g. `{key} = \"{example}\"`, \
                 or leave it out for the default"
            ),
        ));
    }
    Ok(duration)
}

fn read_ttr(meta: &ParseNestedMeta<'_>) -> syn::Result<Duration> {
    let lit = read_str(meta, "ttr = \"2m\"")?;
    let ttr = duration::parse("ttr", &lit, "2m")?;
    if ttr < Duration::from_secs(1) {
        return Err(syn::Error::new(
            lit.span(),
            "`ttr` must be at least 1s: queue servers count it in whole seconds",
        ));
    }
    Ok(ttr)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The texts of every error reading `input` gives.
    pub(in crate::message) fn errors(input: &DeriveInput) -> Vec<String> {
        match Input::from_syn(input) {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reads_every_option() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(name = "Wire", queue = "emails", priority = 100, delay = "30s")]
            #[message(ttr = "2m", timeout = "90s", retries = 5, backoff = "2s", backoff_max = "10m")]
            struct Ping;
        };
        let parsed = Input::from_syn(&input).unwrap();
        let options = parsed.options;
        assert_eq!(options.name.as_deref(), Some("Wire"));
        assert_eq!(options.queue.as_deref(), Some("emails"));
        assert_eq!(options.priority, Some(100));
        assert_eq!(options.delay, Some(Duration::from_secs(30)));
        assert_eq!(options.ttr, Some(Duration::from_secs(120)));
        assert_eq!(options.timeout, Some(Duration::from_secs(90)));
        assert_eq!(options.retries, Some(5));
        assert_eq!(options.backoff, Some(Duration::from_secs(2)));
        assert_eq!(options.backoff_max, Some(Duration::from_secs(600)));
    }

    #[test]
    fn reports_every_bad_key_at_once() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(queu = "x", priority = "high", ttr = "soon", retries = 5, retries = 6)]
            #[message(tr(1), timeout = "0s")]
            struct Ping<T>(T);
        };
        let errors = errors(&input);
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(errors[0].contains("does not support generic types"));
        assert!(errors[1].starts_with("unknown `#[message]` key `queu`; valid keys are `name`"));
        assert!(errors[2].starts_with("`priority` takes a whole number"));
        assert!(errors[3].starts_with("`ttr = \"soon\"` is not a duration"));
        assert!(errors[4].starts_with("duplicate `#[message]` key `retries`"));
        assert!(errors[5].starts_with("unknown `#[message]` key `tr`"));
        assert!(errors[6].starts_with("`timeout` must be longer than zero"));
    }

    #[test]
    fn reads_the_unique_key_fields_and_hold() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(unique = "customer, order_id", unique_for = "10m")]
            struct Refund { customer: String, order_id: u64, cents: u64 }
        };
        let options = Input::from_syn(&input).unwrap().options;
        let fields = options.unique.unwrap();
        assert_eq!(fields.names, ["customer", "order_id"]);
        assert_eq!(options.unique_for, Some(Duration::from_secs(600)));
    }

    #[test]
    fn reads_the_limits_and_checks_them() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(concurrency = 2, concurrency_key = "customer, region", rate_limit = 50)]
            struct CallApi { customer: String, region: u32 }
        };
        let options = Input::from_syn(&input).unwrap().options;
        assert_eq!(options.concurrency.value, Some(2));
        let fields = options.concurrency.key.unwrap();
        assert_eq!(fields.names, ["customer", "region"]);
        assert_eq!(
            (options.rate.value, options.rate.key.is_none()),
            (Some(50), true)
        );

        let input: DeriveInput = syn::parse_quote! {
            #[message(concurrency = 0, rate_key = "customer", concurrency_key = "client")]
            struct CallApi { customer: String }
        };
        let errors = errors(&input);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("`concurrency = 0` would never run a message"));
        assert!(errors[1].starts_with("`CallApi` has no field `client` to make a concurrency key"));
        assert!(errors[2].starts_with("`rate_key` names the fields a limit counts by"));
    }

    #[test]
    fn refuses_a_union() {
        let input: DeriveInput = syn::parse_quote!(
            union Number {
                int: u32,
            }
        );
        assert_eq!(
            errors(&input),
            ["#[derive(mq::Message)] does not support unions: make it a struct or an enum"]
        );
    }

    #[test]
    fn refuses_a_key_without_value() {
        let input: DeriveInput = syn::parse_quote!(
            #[message(queue)]
            struct Ping;
        );
        assert_eq!(
            errors(&input),
            ["`#[message]` key `queue` needs a value, e.g. `queue = \"emails\"`"]
        );
    }

    #[test]
    fn checks_numbers_and_durations() {
        let input: DeriveInput = syn::parse_quote!(
            #[message(priority = 5000000000, ttr = "500ms")]
            struct Ping;
        );
        let errors = errors(&input);
        assert!(errors[0].contains("`priority = 5000000000` is out of range"));
        assert!(errors[1].contains("`ttr` must be at least 1s"));
    }

    #[test]
    fn queue_names_follow_beanstalkd() {
        assert!(is_valid_queue("emails"));
        assert!(is_valid_queue("a-b_c.d$(e)+f/g;h"));
        assert!(!is_valid_queue(""));
        assert!(!is_valid_queue("-emails"));
        assert!(!is_valid_queue("order emails"));
        assert!(!is_valid_queue(&"q".repeat(201)));
    }
}
