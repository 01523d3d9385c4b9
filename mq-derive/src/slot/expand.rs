//! A slot's registration: a hidden type named like the function (so that tests can write
//! `SlotDef::of::<send_mail>()`), its `Slot` impl, and an `inventory` submission.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use super::ast::Slot;

pub(crate) fn slot(item: &ItemFn, slot: &Slot<'_>) -> TokenStream {
    let vis = &item.vis;
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
    let run = if item.sig.asyncness.is_some() {
        quote_spanned! {return_span=> ::mq::__private::into_slot_result(#call.await) }
    } else {
        quote_spanned! {return_span=> ::mq::__private::run_blocking(move || #call).await }
    };
    let message_type = quote_spanned! {message.span()=> type Message = #message; };
    quote! {
        #item

        #[allow(non_camel_case_types, dead_code)]
        #[doc(hidden)]
        #vis struct #ident {}

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
                    ::mq::__private::Box::pin(async move {
                        #(#take_params)*
                        #run
                    })
                }
            }

            ::mq::__private::inventory::submit! {
                ::mq::__private::SlotDef::of::<#ident>()
            }
        };
    }
}
