//! A slot's registration: a hidden type named like the function (so that tests can write
//! `SlotDef::of::<send_mail>()`), its `Slot` impl, and an `inventory` submission.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use super::ast::Slot;

pub(crate) fn slot(item: &ItemFn, slot: &Slot<'_>) -> TokenStream {
    let ident = &item.sig.ident;
    let path = ident.to_string();
    let message = slot.message;
    let message_arg = if slot.by_ref {
        quote!(&__mq_message)
    } else {
        quote!(__mq_message)
    };
    let names: Vec<_> = (0..slot.params.len())
        .map(|i| format_ident!("__mq_param_{}", i))
        .collect();
    let take_params = slot.params.iter().zip(&names).map(|(ty, name)| {
        quote_spanned! {ty.span()=>
            let #name = ::mq::__private::param::<#ty>(&__mq_context)?;
        }
    });
    let requirements = slot.params.iter().map(|ty| {
        quote! {
            if let ::mq::__private::Some(requirement) =
                (&&::mq::__private::Probe::<#ty>::new()).requirement()
            {
                requirements.push(requirement);
            }
        }
    });
    let call = quote!(#ident(#message_arg #(, #names)*));
    let return_span = match &item.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    // The conversion is spanned at the return type, so an unsupported one is reported there.
    let run = if item.sig.asyncness.is_some() {
        let convert =
            quote_spanned! {return_span=> ::mq::__private::into_slot_result(__mq_result) };
        quote! {
            let __mq_result = #call.await;
            #convert
        }
    } else {
        quote_spanned! {return_span=> ::mq::__private::run_blocking(move || #call).await }
    };
    let message_type = quote_spanned! {message.span()=> type Message = #message; };
    // Spanned at `async`, so that a slot whose future is not `Send` is reported there.
    let future_span = item.sig.asyncness.map_or(ident.span(), |a| a.span);
    let future = quote_spanned! {future_span=>
        ::mq::__private::Box::pin(async move {
            #(#take_params)*
            #run
        })
    };
    let hidden_type = hidden_type(item);
    quote! {
        #item

        #hidden_type

        const _: () = {
            #[allow(unused_imports)]
            use ::mq::__private::ProbeRequirement as _;

            impl ::mq::__private::Slot for #ident {
                #message_type
                const PATH: &'static str = ::core::concat!(::core::module_path!(), "::", #path);

                fn requirements() -> ::mq::__private::Vec<::mq::__private::Requirement> {
                    #[allow(unused_mut)]
                    let mut requirements = ::mq::__private::Vec::new();
                    #(#requirements)*
                    requirements
                }

                fn call(
                    __mq_message: Self::Message,
                    __mq_context: ::mq::__private::Context,
                ) -> ::mq::__private::SlotFuture {
                    #future
                }
            }

            ::mq::__private::inventory::submit! {
                ::mq::__private::SlotDef::of::<#ident>()
            }
        };
    }
}

/// The hidden type named like the function, which `SlotDef::of::<f>()` names.
fn hidden_type(item: &ItemFn) -> TokenStream {
    let vis = &item.vis;
    let ident = &item.sig.ident;
    quote! {
        #[allow(non_camel_case_types, dead_code)]
        #[doc(hidden)]
        #vis struct #ident {}
    }
}

/// The error, the function unchanged and, when its message type is plain to see, a stub
/// registration that never runs, so that code naming the slot (`SlotDef::of::<f>()`) adds
/// no errors of its own.
pub(crate) fn fallback(item: &ItemFn, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    let Some(message) = stub_message(item) else {
        return quote! { #error #item };
    };
    let ident = &item.sig.ident;
    let path = ident.to_string();
    let hidden_type = hidden_type(item);
    quote! {
        #error
        #item

        #hidden_type

        const _: () = {
            impl ::mq::__private::Slot for #ident {
                type Message = #message;
                const PATH: &'static str = ::core::concat!(::core::module_path!(), "::", #path);

                fn requirements() -> ::mq::__private::Vec<::mq::__private::Requirement> {
                    ::mq::__private::Vec::new()
                }

                fn call(
                    _: Self::Message,
                    _: ::mq::__private::Context,
                ) -> ::mq::__private::SlotFuture {
                    ::mq::__private::Box::pin(async { ::core::result::Result::Ok(()) })
                }
            }
        };
    }
}

/// The message type of a slot whose signature was refused, if a stub can name it: a free,
/// non-generic function whose first argument is a named type.
fn stub_message(item: &ItemFn) -> Option<&Type> {
    let sig = &item.sig;
    if !sig.generics.params.is_empty() {
        return None;
    }
    let first = match sig.inputs.first()? {
        FnArg::Receiver(_) => return None,
        FnArg::Typed(typed) => &*typed.ty,
    };
    let message = match first {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    matches!(message, Type::Path(_)).then_some(message)
}
