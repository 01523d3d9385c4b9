//! The `Message` impl and its registration; on error, the error and a stub impl.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput};

use super::ast::Input;
use crate::krate;

pub(crate) fn derive(input: &Input<'_>) -> TokenStream {
    let ident = input.ident;
    let options = &input.options;
    let m = &krate::private(options.krate.as_ref());
    let name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let queue = options.queue.as_deref().unwrap_or("default");
    let priority = options.priority.unwrap_or(1024);
    let delay = duration(m, options.delay.unwrap_or(Duration::ZERO));
    let ttr = duration(m, options.ttr.unwrap_or(Duration::from_secs(60)));
    let timeout = optional(m, options.timeout.map(|t| duration(m, t)));
    let retries = optional(m, options.retries.map(|r| quote!(#r)));
    let backoff = match (options.backoff, options.backoff_max) {
        (None, None) => quote!(#m::None),
        (base, max) => {
            let base = duration(m, base.unwrap_or(Duration::from_secs(1)));
            let max = duration(m, max.unwrap_or(Duration::from_secs(600)));
            quote!(#m::Some(#m::Backoff { base: #base, max: #max }))
        }
    };
    let versions = versions(m, input);
    let unique = options.unique.as_ref().map(|_| {
        let hold = duration(m, options.unique_for.unwrap_or(Duration::ZERO));
        quote!(.with_unique(#hold))
    });
    let unique_key = super::keys::unique_method(m, options.unique.as_ref());
    let concurrency = options
        .concurrency
        .value
        .map(|n| quote!(.with_concurrency(#n)));
    let rate = options.rate.value.map(|r| quote!(.with_rate(#r)));
    let limit_keys = super::limits::method(m, &options.concurrency, &options.rate);
    let (schedule, def) = match &options.schedule {
        Some((expr, span)) => {
            let zone = options.schedule_zone.as_deref().unwrap_or("UTC");
            // Spanned at the expression: a type that is not `Default` is reported there.
            let m_span = krate::private_at(options.krate.as_ref(), *span);
            let def = quote_spanned! {*span=> #m_span::MessageDef::scheduled::<#ident>() };
            (quote!(.with_schedule(#expr, #zone)), def)
        }
        None => (quote!(), quote!(#m::MessageDef::of::<#ident>())),
    };
    // Spanned at the type's name, so a missing Serialize or Deserialize points there.
    let m_ident = krate::private_at(options.krate.as_ref(), ident.span());
    let message_impl = quote_spanned! {ident.span()=>
        impl #m_ident::Message for #ident
    };
    quote! {
        const _: () = {
            #message_impl {
                const NAME: &'static str = #name;
                const OPTIONS: #m::MessageOptions =
                    #m::message_options(#queue, #priority, #delay, #ttr, #timeout, #retries, #backoff)#unique #schedule #concurrency #rate;
                #versions
                #unique_key
                #limit_keys
            }
            #m::inventory::submit! {
                #def
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
    let m = krate::private(super::ast::krate_of(input).as_ref());
    quote! {
        #error
        const _: () = {
            impl #m::Message for #ident {
                const NAME: &'static str = #name;
                const OPTIONS: #m::MessageOptions = #m::MessageOptions::DEFAULT;
            }
        };
    }
}

/// `VERSION`, `PREVIOUS_VERSIONS` and `decode_version`: the current version read as the
/// type itself, each older one as its type in `previous(...)` and then upcast. The call of
/// an older one is spanned at its type, where a missing `From` or `Deserialize` is reported.
fn versions(m: &TokenStream, input: &Input<'_>) -> TokenStream {
    let versions = &input.options.versions;
    let current = versions.current();
    let previous = versions.previous();
    let numbers = previous.iter().map(|p| p.version.number);
    let arms = previous.iter().map(|p| {
        let n = p.version.number;
        let ty = &p.ty;
        let span = syn::spanned::Spanned::span(ty);
        let m_ty = krate::private_at(input.options.krate.as_ref(), span);
        quote_spanned! {span=>
            #n => #m_ty::decode_previous::<Self, #ty>(__mq_body, #n),
        }
    });
    quote! {
        const VERSION: u32 = #current;
        const PREVIOUS_VERSIONS: &'static [u32] = &[#(#numbers),*];

        fn decode_version(
            __mq_body: &str,
            __mq_version: u32,
        ) -> #m::Result<Self, #m::DecodeError> {
            match __mq_version {
                #current => #m::decode_current::<Self>(__mq_body),
                #(#arms)*
                _ => #m::Result::Err(#m::DecodeError::unreadable::<Self>(__mq_version)),
            }
        }
    }
}

fn duration(m: &TokenStream, duration: Duration) -> TokenStream {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    quote!(#m::Duration::new(#secs, #nanos))
}

fn optional(m: &TokenStream, value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(#m::Some(#value)),
        None => quote!(#m::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(input: DeriveInput) -> String {
        derive(&Input::from_syn(&input).unwrap()).to_string()
    }

    #[test]
    fn a_message_without_versions_is_version_1_and_reads_only_itself() {
        let code = expanded(syn::parse_quote!(
            struct Ping;
        ));
        assert!(code.contains("const VERSION : u32 = 1u32 ;"), "{code}");
        assert!(code.contains("const PREVIOUS_VERSIONS : & 'static [u32] = & [] ;"));
        assert!(code.contains("1u32 => :: mq :: __private :: decode_current :: < Self >"));
        assert!(!code.contains("decode_previous"));
    }

    #[test]
    fn limits_are_options_and_their_key_fields_a_method() {
        let code = expanded(syn::parse_quote!(
            #[message(concurrency = 2, concurrency_key = "customer, region", rate_limit = 50)]
            struct CallApi {
                customer: String,
                region: u32,
            }
        ));
        assert!(
            code.contains(". with_concurrency (2u32) . with_rate (50u32) ;"),
            "{code}"
        );
        assert!(code.contains("fn limit_keys"), "{code}");
        assert!(code.contains("unique_part (& self . customer , & mut key) ?"));
        assert!(code.contains("unique_part (& self . region , & mut key) ?"));
        let whole_type = expanded(syn::parse_quote!(
            #[message(rate_limit = 5)]
            struct Poll;
        ));
        assert!(whole_type.contains(". with_rate (5u32) ;"), "{whole_type}");
        assert!(
            !whole_type.contains("limit_keys"),
            "the trait's default: {whole_type}"
        );
    }

    #[test]
    fn each_older_version_is_read_as_its_type_then_upcast() {
        let code = expanded(syn::parse_quote!(
            #[message(version = 3, previous(2 = old::V2, 1 = V1), crate = "my_mq")]
            struct OrderPlaced;
        ));
        assert!(code.contains("const VERSION : u32 = 3u32 ;"), "{code}");
        assert!(code.contains("& [1u32 , 2u32]"), "ascending: {code}");
        assert!(code.contains("3u32 => my_mq :: __private :: decode_current :: < Self >"));
        assert!(code.contains(
            "1u32 => my_mq :: __private :: decode_previous :: < Self , V1 > (__mq_body , 1u32)"
        ));
        assert!(
            code.contains("2u32 => my_mq :: __private :: decode_previous :: < Self , old :: V2 >")
        );
        assert!(code.contains("DecodeError :: unreadable :: < Self > (__mq_version)"));
    }
}
