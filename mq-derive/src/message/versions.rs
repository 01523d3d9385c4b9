//! `version = N` and `previous(1 = OrderPlacedV1, ...)` of `#[message(...)]`: read, then
//! checked together (a previous version must be older than the current one, listed once).

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{LitInt, Token, Type};

use super::ast::value;
use crate::errors::Errors;

/// A version number as written, with the span of its literal.
#[derive(Clone, Copy)]
pub(crate) struct Version {
    pub(crate) number: u32,
    pub(crate) span: Span,
}

/// One older shape: its version and the type that reads it.
pub(crate) struct Previous {
    pub(crate) version: Version,
    pub(crate) ty: Type,
}

/// `previous(...)` as written, with the span of its key.
pub(crate) struct PreviousList {
    pub(crate) key: Span,
    pub(crate) list: Vec<Previous>,
}

/// The versions of a message type; `None` where not written.
#[derive(Default)]
pub(crate) struct Versions {
    pub(crate) current: Option<Version>,
    pub(crate) previous: Option<PreviousList>,
}

impl Versions {
    /// The version this build writes: 1 unless `version = N` says otherwise.
    pub(crate) fn current(&self) -> u32 {
        self.current.map_or(1, |v| v.number)
    }

    /// The older shapes, ascending by version.
    pub(crate) fn previous(&self) -> Vec<&Previous> {
        let mut list: Vec<&Previous> = self.previous.iter().flat_map(|p| &p.list).collect();
        list.sort_by_key(|p| p.version.number);
        list
    }

    /// Every mistake of the two keys together, each at its token.
    pub(crate) fn check(&self, errors: &mut Errors) {
        if let Some(current) = self.current {
            if current.number == 0 {
                errors.push(syn::Error::new(
                    current.span,
                    "`version = 0` is not a version: versions start at 1 (the default); \
                     write `version = 2` for the second shape of a message",
                ));
            }
        }
        let Some(previous) = &self.previous else {
            return;
        };
        let Some(current) = self.current else {
            errors.push(syn::Error::new(
                previous.key,
                "`previous(...)` needs the current version: add `version = N` with N above \
                 every version listed, e.g. `#[message(version = 2, previous(1 = OrderPlacedV1))]`",
            ));
            return;
        };
        if previous.list.is_empty() {
            errors.push(syn::Error::new(
                previous.key,
                "`previous()` lists no version: write `previous(1 = OrderPlacedV1)`, or leave it out",
            ));
        }
        let mut seen: Vec<u32> = Vec::new();
        for entry in &previous.list {
            let n = entry.version.number;
            if n == 0 {
                errors.push(syn::Error::new(
                    entry.version.span,
                    "version 0 is not a version: versions start at 1",
                ));
            } else if n >= current.number {
                errors.push(syn::Error::new(
                    entry.version.span,
                    format!(
                        "previous version {n} is not older than `version = {}`: list only \
                         the versions below the current one, or raise `version`",
                        current.number
                    ),
                ));
            } else if seen.contains(&n) {
                errors.push(syn::Error::new(
                    entry.version.span,
                    format!(
                        "version {n} is listed twice in `previous(...)`: give each older \
                         version one type"
                    ),
                ));
            }
            seen.push(n);
        }
    }
}

/// `version = N`.
pub(crate) fn read_version(meta: &ParseNestedMeta<'_>) -> syn::Result<Version> {
    match value(meta, "version = 2")? {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(lit),
            ..
        }) => number(&lit),
        other => Err(syn::Error::new_spanned(
            other,
            "`version` takes a whole number from 1 to 4294967295, e.g. `version = 2`",
        )),
    }
}

/// `previous(1 = OrderPlacedV1, 2 = OrderPlacedV2)`.
pub(crate) fn read_previous(meta: &ParseNestedMeta<'_>) -> syn::Result<PreviousList> {
    let key = syn::spanned::Spanned::span(&meta.path);
    if !meta.input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            key,
            "`previous` takes a list of older versions and their types, e.g. \
             `previous(1 = OrderPlacedV1)`",
        ));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let list = Punctuated::<Previous, Token![,]>::parse_terminated(&content).inspect_err(|_| {
        // The rest of the list is not read: consumed, so that syn adds no error of its own.
        let _ = content.parse::<proc_macro2::TokenStream>();
    })?;
    Ok(PreviousList {
        key,
        list: list.into_iter().collect(),
    })
}

impl Parse for Previous {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lit: LitInt = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "`previous` lists `VERSION = Type`, e.g. `previous(1 = OrderPlacedV1)`",
            )
        })?;
        let version = number(&lit)?;
        input.parse::<Token![=]>()?;
        let ty = input.parse()?;
        Ok(Previous { version, ty })
    }
}

fn number(lit: &LitInt) -> syn::Result<Version> {
    let number = lit.base10_parse::<u32>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("version `{lit}` is out of range: write a whole number from 1 to 4294967295"),
        )
    })?;
    Ok(Version {
        number,
        span: lit.span(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::ast::tests::errors;
    use super::super::ast::Input;
    use syn::DeriveInput;

    #[test]
    fn reads_the_version_and_the_older_shapes_in_order() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(version = 3, previous(2 = OrderPlacedV2, 1 = crate::old::OrderPlacedV1))]
            struct OrderPlaced;
        };
        let parsed = Input::from_syn(&input).unwrap();
        let versions = &parsed.options.versions;
        assert_eq!(versions.current(), 3);
        let previous: Vec<u32> = versions
            .previous()
            .iter()
            .map(|p| p.version.number)
            .collect();
        assert_eq!(previous, [1, 2]);
    }

    #[test]
    fn without_the_keys_a_message_is_version_1_with_no_older_shape() {
        let input: DeriveInput = syn::parse_quote!(
            struct Ping;
        );
        let parsed = Input::from_syn(&input).unwrap();
        assert_eq!(parsed.options.versions.current(), 1);
        assert!(parsed.options.versions.previous().is_empty());
    }

    #[test]
    fn reports_every_mistake_of_the_versions_at_once() {
        let input: DeriveInput = syn::parse_quote! {
            #[message(version = 2, previous(0 = A, 1 = B, 1 = C, 2 = D, 7 = E))]
            struct OrderPlaced;
        };
        let found = errors(&input);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("version 0 is not a version"));
        assert!(found[1].starts_with("version 1 is listed twice in `previous(...)`"));
        assert!(found[2].starts_with("previous version 2 is not older than `version = 2`"));
        assert!(found[3].starts_with("previous version 7 is not older"));
    }

    #[test]
    fn refuses_version_0_and_previous_without_version() {
        let zero: DeriveInput = syn::parse_quote!(
            #[message(version = 0)]
            struct Ping;
        );
        assert!(errors(&zero)[0].starts_with("`version = 0` is not a version"));
        let alone: DeriveInput = syn::parse_quote!(
            #[message(previous(1 = PingV1))]
            struct Ping;
        );
        assert!(errors(&alone)[0].starts_with("`previous(...)` needs the current version"));
    }

    #[test]
    fn refuses_badly_written_lists() {
        let input: DeriveInput = syn::parse_quote!(
            #[message(version = 2, previous = 1, version = "3")]
            struct Ping;
        );
        let found = errors(&input);
        assert!(
            found[0].starts_with("`previous` takes a list"),
            "{found:#?}"
        );
        assert!(found[1].starts_with("`version` takes a whole number"));
        let input: DeriveInput = syn::parse_quote!(
            #[message(version = 2, previous(PingV1))]
            struct Ping;
        );
        assert!(errors(&input)[0].starts_with("`previous` lists `VERSION = Type`"));
    }
}
