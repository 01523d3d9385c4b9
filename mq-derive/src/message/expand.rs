//! The `Message` impl and its registration; on error, the error and a stub impl.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput};

use super::ast::Input;

pub(crate) fn derive(input: &Input<'_>) -> TokenStream {
    let ident = input.ident;
    let options = &input.options;
    let name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let queue = options.queue.as_deref().unwrap_or("default");
    let priority = options.priority.unwrap_or(1024);
    let delay = duration(options.delay.unwrap_or(Duration::ZERO));
    let ttr = duration(options.ttr.unwrap_or(Duration::from_secs(60)));
    let timeout = optional(options.timeout.map(duration));
    let retries = optional(options.retries.map(|r| quote!(#r)));
    let backoff = match (options.backoff, options.backoff_max) {
        (None, None) => quote!(::mq::__private::None),
        (base, max) => {
            let base = duration(base.unwrap_or(Duration::from_secs(1)));
            let max = duration(max.unwrap_or(Duration::from_secs(600)));
            quote!(::mq::__private::Some(::mq::__private::Backoff { base: #base, max: #max }))
        }
    };
    // Spanned at the type's name, so a missing Serialize or Deserialize points there.
    let message_impl = quote_spanned! {ident.span()=>
        impl ::mq::__private::Message for #ident
    };
    quote! {
        const _: () = {
            #message_impl {
                const NAME: &'static str = #name;
                const OPTIONS: ::mq::__private::MessageOptions =
                    ::mq::__private::message_options(#queue, #priority, #delay, #ttr, #timeout, #retries, #backoff);
            }
            ::mq::__private::inventory::submit! {
                ::mq::__private::MessageDef::of::<#ident>()
            }
        };
    }
}

/// The error, and a stub impl with default options so that uses of the type do not add
/// errors of their own. A generic type or a union gets no stub: it could not be a message
/// whatever its options, and the stub would only add errors.
pub(crate) fn fallback(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    if !input.generics.params.is_empty() || matches!(input.data, Data::Union(_)) {
        return error;
    }
    let ident = &input.ident;
    let name = ident.to_string();
    quote! {
        #error
        const _: () = {
            impl ::mq::__private::Message for #ident {
                const NAME: &'static str = #name;
                const OPTIONS: ::mq::__private::MessageOptions = ::mq::__private::MessageOptions::DEFAULT;
            }
        };
    }
}

fn duration(duration: Duration) -> TokenStream {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    quote!(::mq::__private::Duration::new(#secs, #nanos))
}

fn optional(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::mq::__private::Some(#value)),
        None => quote!(::mq::__private::None),
    }
}
