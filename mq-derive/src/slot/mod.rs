//! `#[slot]`: parse the function, check its signature, expand its registration.

mod ast;
mod expand;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Item, ItemFn, Path};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = not_a_function(&input).into_compile_error();
            return quote! { #error #input };
        }
    };
    let (krate, checked) = match read_args(args) {
        Ok(krate) => (krate.clone(), ast::Slot::from_syn(&item)),
        Err(error) => (None, Err(error)),
    };
    match checked {
        Ok(slot) => expand::slot(&item, &slot, krate.as_ref()),
        Err(error) => expand::fallback(&item, error, krate.as_ref()),
    }
}

/// The one option a slot takes, `crate = "my_mq"`; anything else is an error at it.
fn read_args(args: TokenStream) -> syn::Result<Option<Path>> {
    let mut krate = None;
    let parser = syn::meta::parser(|meta| {
        if !meta.path.is_ident(crate::symbol::CRATE) {
            return Err(meta.error(
                "#[mq::slot] takes no option but `crate = \"...\"`: put queue and retry \
                 options on the message type's #[message(...)]",
            ));
        }
        match meta.value()?.parse::<syn::Expr>()? {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(lit),
                ..
            }) => krate = Some(crate::krate::read(&lit)?),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "`crate` takes a string literal, e.g. `#[mq::slot(crate = \"my_mq\")]`",
                ))
            }
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok(krate)
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
