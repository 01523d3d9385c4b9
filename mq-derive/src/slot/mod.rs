//! `#[slot]`: parse the function, check its signature, expand its registration.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[mq::slot] goes on a free function, e.g. `#[mq::slot] async fn send(msg: SendMail)`",
            )
            .into_compile_error();
            return quote! { #error #input };
        }
    };
    let checked = if args.is_empty() {
        ast::Slot::from_syn(&item)
    } else {
        Err(syn::Error::new_spanned(
            args,
            "#[mq::slot] takes no arguments; put queue and retry options on the message type's #[message(...)]",
        ))
    };
    match checked {
        Ok(slot) => expand::slot(&item, &slot),
        Err(error) => {
            let error = error.into_compile_error();
            quote! { #error #item }
        }
    }
}
