//! `#[slot]`: parse the function, check its signature, expand its registration.

mod ast;
mod expand;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Item, ItemFn};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = not_a_function(&input).into_compile_error();
            return quote! { #error #input };
        }
    };
    let checked = if args.is_empty() {
        ast::Slot::from_syn(&item)
    } else {
        Err(syn::Error::new_spanned(
            args,
            "#[mq::slot] takes no arguments: remove them, and put queue and retry options on \
             the message type's #[message(...)]",
        ))
    };
    match checked {
        Ok(slot) => expand::slot(&item, &slot),
        Err(error) => expand::fallback(&item, error),
    }
}

/// The error for `#[slot]` on something other than a function, at its keyword.
fn not_a_function(input: &TokenStream) -> syn::Error {
    let (span, what) = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Struct(item)) => (item.struct_token.span, "a struct"),
        Ok(Item::Enum(item)) => (item.enum_token.span, "an enum"),
        Ok(Item::Union(item)) => (item.union_token.span, "a union"),
        Ok(Item::Impl(item)) => (item.impl_token.span, "an impl block"),
        Ok(Item::Trait(item)) => (item.trait_token.span, "a trait"),
        Ok(Item::Mod(item)) => (item.mod_token.span, "a module"),
        Ok(Item::Const(item)) => (item.const_token.span, "a constant"),
        Ok(Item::Static(item)) => (item.static_token.span, "a static"),
        Ok(Item::Type(item)) => (item.type_token.span, "a type alias"),
        Ok(Item::Use(item)) => (item.use_token.span, "a `use`"),
        Ok(other) => (other.span(), "this item"),
        Err(_) => (Span::call_site(), "this item"),
    };
    syn::Error::new(
        span,
        format!(
            "#[mq::slot] goes on a free function, not on {what}: write e.g. \
             `#[mq::slot] async fn send(msg: SendMail)`"
        ),
    )
}
