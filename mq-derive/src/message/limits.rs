//! `concurrency = N` with `concurrency_key = "field, field"`, and `rate_limit = R` with
//! `rate_key = "..."`: a message type's own per-key limits. A key without its limit is an
//! error; a limit without key fields is one limit for the whole type.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::DeriveInput;

use super::keys::{self, KeyFields};
use crate::errors::Errors;

/// One limit as written: its number, its key fields, and where the key was written.
#[derive(Default)]
pub(crate) struct Limit {
    pub(crate) value: Option<u32>,
    pub(crate) key: Option<KeyFields>,
    /// The span of the key (`concurrency_key`), for the error when the limit is missing.
    pub(crate) key_span: Option<Span>,
    /// Whether the limit was written, even with a value refused (then that is the error).
    pub(crate) written: bool,
}

impl Limit {
    /// Checks the key fields against the type's, and that a key has its limit.
    /// `limit` is the limit's key as written, `example` a whole `limit = N`.
    pub(crate) fn check(
        &self,
        input: &DeriveInput,
        limit: &str,
        example: &str,
        errors: &mut Errors,
    ) {
        if let Some(fields) = &self.key {
            if let Err(error) = keys::check(input, fields) {
                errors.push(error);
            }
        }
        if let (false, Some(fields), Some(span)) = (self.written, &self.key, self.key_span) {
            let key = fields.kind.key;
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{key}` names the fields a limit counts by, and there is no limit: add \
                     `{limit}`, e.g. `{example}`, or remove `{key}`"
                ),
            ));
        }
    }
}

/// The `limit_keys` method of the `Message` impl, or nothing when neither limit has key
/// fields (the trait's default then says: no key fields, so one key for the type).
pub(crate) fn method(m: &TokenStream, concurrency: &Limit, rate: &Limit) -> TokenStream {
    if concurrency.key.is_none() && rate.key.is_none() {
        return TokenStream::new();
    }
    let key = |limit: &Limit| match &limit.key {
        Some(fields) => {
            let joined = keys::joined(m, fields);
            quote!(#m::Some(#joined))
        }
        None => quote!(#m::None),
    };
    let (concurrency, rate) = (key(concurrency), key(rate));
    quote! {
        fn limit_keys(
            &self,
        ) -> #m::Result<(#m::Option<#m::String>, #m::Option<#m::String>), #m::JsonError> {
            #m::Ok((#concurrency, #rate))
        }
    }
}
