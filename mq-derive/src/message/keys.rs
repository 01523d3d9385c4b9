//! Key fields: `unique = "field, field"`, `concurrency_key = "..."` and `rate_key = "..."`
//! name the fields whose values make a key. Read and checked against the type's own fields
//! here, for each in its own words; the code that joins the values is made here too.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, Fields, LitStr};

/// What a list of key fields is for, in the words of its errors.
pub(crate) struct Kind {
    /// The key as written: `unique`.
    pub(crate) key: &'static str,
    /// What the fields make: `a unique key`.
    noun: &'static str,
    /// A value of one field and one of two: `"order_id"`, `"customer, order_id"`.
    examples: (&'static str, &'static str),
    /// The dispatch that gives a key instead, for a type without named fields.
    at_dispatch: &'static str,
}

/// `unique = "..."`.
pub(crate) const UNIQUE: Kind = Kind {
    key: "unique",
    noun: "a unique key",
    examples: ("order_id", "customer, order_id"),
    at_dispatch: "bus.dispatch(msg).unique(key)",
};

/// `concurrency_key = "..."`.
pub(crate) const CONCURRENCY: Kind = Kind {
    key: "concurrency_key",
    noun: "a concurrency key",
    examples: ("customer_id", "customer, region"),
    at_dispatch: "bus.dispatch(msg).concurrency_key(key, 2)",
};

/// `rate_key = "..."`.
pub(crate) const RATE: Kind = Kind {
    key: "rate_key",
    noun: "a rate key",
    examples: ("customer_id", "customer, region"),
    at_dispatch: "bus.dispatch(msg).rate_limit(key, 50)",
};

/// The key fields as written, each with the literal's span.
pub(crate) struct KeyFields {
    pub(crate) names: Vec<String>,
    pub(crate) span: Span,
    /// What they are for.
    pub(crate) kind: &'static Kind,
}

/// Reads `unique = "a, b"` (or another kind): at least one field name, each an identifier.
pub(crate) fn read(lit: &LitStr, kind: &'static Kind) -> syn::Result<KeyFields> {
    let names: Vec<String> = lit
        .value()
        .split(',')
        .map(|name| name.trim().to_owned())
        .collect();
    if names
        .iter()
        .any(|name| syn::parse_str::<syn::Ident>(name).is_err())
    {
        let (key, (one, two)) = (kind.key, kind.examples);
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{key}` takes the names of the fields the key is made of, separated by \
                 commas, e.g. `{key} = \"{one}\"` or `{key} = \"{two}\"`"
            ),
        ));
    }
    Ok(KeyFields {
        names,
        span: lit.span(),
        kind,
    })
}

/// Checks that every key field is a named field of `input`.
pub(crate) fn check(input: &DeriveInput, fields: &KeyFields) -> syn::Result<()> {
    let Kind {
        key,
        noun,
        at_dispatch,
        ..
    } = fields.kind;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            fields.span,
            format!(
                "`{key}` names fields, so it needs a struct with named fields; for an enum, \
                 give the key at dispatch: `{at_dispatch}`"
            ),
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            fields.span,
            format!(
                "`{key}` names fields, so it needs a struct with named fields; give the key \
                 at dispatch instead: `{at_dispatch}`"
            ),
        ));
    };
    let have: Vec<String> = named
        .named
        .iter()
        .filter_map(|field| field.ident.as_ref().map(ToString::to_string))
        .collect();
    for name in &fields.names {
        if !have.contains(name) {
            return Err(syn::Error::new(
                fields.span,
                format!(
                    "`{}` has no field `{name}` to make {noun} of; its fields are {}",
                    input.ident,
                    have.iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// An expression of type `String` made of the fields' values (joined by `/`, see
/// `mq::__private::unique_part`), which returns serde's error from the method it is in.
pub(crate) fn joined(m: &TokenStream, fields: &KeyFields) -> TokenStream {
    let parts = fields.names.iter().map(|name| {
        let ident = syn::Ident::new(name, fields.span);
        quote_spanned! {fields.span=> #m::unique_part(&self.#ident, &mut key)?; }
    });
    quote! {
        {
            let mut key = #m::String::new();
            #(#parts)*
            key
        }
    }
}

/// The `unique_key` method of the `Message` impl, or nothing for a type without `unique`.
pub(crate) fn unique_method(m: &TokenStream, fields: Option<&KeyFields>) -> TokenStream {
    let Some(fields) = fields else {
        return TokenStream::new();
    };
    let key = joined(m, fields);
    quote! {
        fn unique_key(&self) -> #m::Result<#m::Option<#m::String>, #m::JsonError> {
            #m::Ok(#m::Some(#key))
        }
    }
}
