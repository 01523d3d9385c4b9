//! `unique = "field, field"`: the fields a unique message's key is made of, checked against
//! the type's own fields, and the `unique_key` method made of them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, Fields, LitStr};

/// The key fields as written, each with the literal's span.
pub(crate) struct KeyFields {
    pub(crate) names: Vec<String>,
    pub(crate) span: Span,
}

/// Reads `unique = "a, b"`: at least one field name, each an identifier.
pub(crate) fn read(lit: &LitStr) -> syn::Result<KeyFields> {
    let names: Vec<String> = lit
        .value()
        .split(',')
        .map(|name| name.trim().to_owned())
        .collect();
    if names
        .iter()
        .any(|name| syn::parse_str::<syn::Ident>(name).is_err())
    {
        return Err(syn::Error::new(
            lit.span(),
            "`unique` takes the names of the fields the key is made of, separated by commas, \
             e.g. `unique = \"order_id\"` or `unique = \"customer, order_id\"`",
        ));
    }
    Ok(KeyFields {
        names,
        span: lit.span(),
    })
}

/// Checks that every key field is a named field of `input`.
pub(crate) fn check(input: &DeriveInput, fields: &KeyFields) -> syn::Result<()> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            fields.span,
            "`unique` names fields, so it needs a struct with named fields; for an enum, \
             give the key at dispatch: `bus.dispatch(msg).unique(key)`",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            fields.span,
            "`unique` names fields, so it needs a struct with named fields; give the key at \
             dispatch instead: `bus.dispatch(msg).unique(key)`",
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
                    "`{}` has no field `{name}` to make a unique key of; its fields are {}",
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

/// The `unique_key` method of the `Message` impl, or nothing for a type without `unique`.
pub(crate) fn method(m: &TokenStream, fields: Option<&KeyFields>) -> TokenStream {
    let Some(fields) = fields else {
        return TokenStream::new();
    };
    let parts = fields.names.iter().map(|name| {
        let ident = syn::Ident::new(name, fields.span);
        quote_spanned! {fields.span=> #m::unique_part(&self.#ident, &mut key)?; }
    });
    quote! {
        fn unique_key(&self) -> #m::Result<#m::Option<#m::String>, #m::JsonError> {
            let mut key = #m::String::new();
            #(#parts)*
            #m::Ok(#m::Some(key))
        }
    }
}
