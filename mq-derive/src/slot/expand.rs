//! A slot's registration: a hidden type named like the function (so that tests can write
//! `SlotDef::of::<send_mail>()`), its `Slot` impl, and an `inventory` submission.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Path, PathArguments, ReturnType, Type};

use super::ast::Slot;

pub(crate) fn slot(item: &ItemFn, slot: &Slot<'_>, krate: Option<&Path>) -> TokenStream {
    let m = &crate::krate::private(krate);
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
        let m = crate::krate::private_at(krate, ty.span());
        quote_spanned! {ty.span()=>
            let #name = #m::param::<#ty>(&__mq_context)?;
        }
    });
    let requirements = slot.params.iter().map(|ty| {
        quote! {
            if let #m::Some(requirement) =
                (&&#m::Probe::<#ty>::new()).requirement()
            {
                requirements.push(requirement);
            }
        }
    });
    let call = quote!(#ident(#message_arg #(, #names)*));
    let return_span = match &item.sig.output {
        ReturnType::Type(_, ty) => error_type(ty).unwrap_or(ty).span(),
        ReturnType::Default => ident.span(),
    };
    // The conversion is spanned at the return type, so an unsupported one is reported there;
    // at `E` in `Result<(), E>`, the one part of a `Result` that can be wrong.
    let m_return = crate::krate::private_at(krate, return_span);
    let run = if item.sig.asyncness.is_some() {
        let convert = quote_spanned! {return_span=> #m_return::into_slot_result(__mq_result) };
        quote! {
            let __mq_result = #call.await;
            #convert
        }
    } else {
        quote_spanned! {return_span=> #m_return::run_blocking(move || #call).await }
    };
    // `SlotDef::of` is where a type that is not a message fails; rustc reports that at the
    // type argument, so the slot's name is given the message type's span.
    let m_message = crate::krate::private_at(krate, message.span());
    let mut slot_at_message = ident.clone();
    slot_at_message.set_span(message.span());
    let slot_def = quote_spanned! {message.span()=> #m_message::SlotDef::of::<#slot_at_message>() };
    // Spanned at `async`, so that a slot whose future is not `Send` is reported there.
    let future_span = item.sig.asyncness.map_or(ident.span(), |a| a.span);
    let m_future = crate::krate::private_at(krate, future_span);
    let future = quote_spanned! {future_span=>
        #m_future::slot_future(async move {
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
            use #m::ProbeRequirement as _;

            impl #m::Slot for #ident {
                type Message = #message;
                const PATH: &'static str = ::core::concat!(::core::module_path!(), "::", #path);

                fn requirements() -> #m::Vec<#m::Requirement> {
                    #[allow(unused_mut)]
                    let mut requirements = #m::Vec::new();
                    #(#requirements)*
                    requirements
                }

                fn call(
                    __mq_message: Self::Message,
                    __mq_context: #m::Context,
                ) -> #m::SlotFuture {
                    #future
                }
            }

            #m::inventory::submit! {
                #slot_def
            }
        };
    }
}

/// `E` of a return type written `Result<(), E>` (any path ending in `Result`).
fn error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if last.ident != "Result" {
        return None;
    }
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(Type::Tuple(unit)), Some(error), None) if unit.elems.is_empty() => Some(error),
        _ => None,
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
pub(crate) fn fallback(item: &ItemFn, error: syn::Error, krate: Option<&Path>) -> TokenStream {
    let m = crate::krate::private(krate);
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
            impl #m::Slot for #ident {
                type Message = #message;
                const PATH: &'static str = ::core::concat!(::core::module_path!(), "::", #path);

                fn requirements() -> #m::Vec<#m::Requirement> {
                    #m::Vec::new()
                }

                fn call(
                    _: Self::Message,
                    _: #m::Context,
                ) -> #m::SlotFuture {
                    #m::Box::pin(async { ::core::result::Result::Ok(()) })
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
