//! The parsed form of a slot function, with its signature checked. Every mistake in the
//! signature is reported at once, each at its own token.

use syn::{FnArg, GenericParam, ItemFn, Signature, Type};

use crate::errors::Errors;

/// A slot function whose signature mq can call.
pub(crate) struct Slot<'a> {
    /// The message type, without the reference.
    pub(crate) message: &'a Type,
    /// Whether the function takes `&Message`.
    pub(crate) by_ref: bool,
    /// The types of the parameters after the message.
    pub(crate) params: Vec<&'a Type>,
}

impl<'a> Slot<'a> {
    pub(crate) fn from_syn(item: &'a ItemFn) -> syn::Result<Slot<'a>> {
        let sig = &item.sig;
        let mut errors = Errors::default();
        check_generics(sig, &mut errors);
        if let syn::Safety::Unsafe(unsafety) = &sig.safety {
            errors.push(syn::Error::new_spanned(
                unsafety,
                "a slot cannot be `unsafe`: remove `unsafe` and use an `unsafe` block inside",
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(syn::Error::new_spanned(
                variadic,
                "a slot cannot be variadic: remove `...`",
            ));
        }
        let mut types = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                    receiver,
                    "a slot cannot take `self`: make it a free function and pass what it needs \
                     as `mq::State<T>`",
                )),
                FnArg::Typed(typed) => {
                    check_impl_trait(&typed.ty, &mut errors);
                    types.push(&*typed.ty);
                }
            }
        }
        let Some((first, params)) = types.split_first() else {
            if !sig.inputs.iter().any(|i| matches!(i, FnArg::Receiver(_))) {
                errors.push(syn::Error::new_spanned(
                    &sig.ident,
                    format!(
                        "a slot takes the message as its first argument: write e.g. \
                         `fn {}(msg: OrderPlaced)`",
                        sig.ident
                    ),
                ));
            }
            return Err(errors.finish(()).expect_err("an error was pushed"));
        };
        let (message, by_ref) = match first {
            Type::Reference(reference) => {
                if let Some(mutability) = reference.mutability {
                    errors.push(syn::Error::new_spanned(
                        mutability,
                        "a slot takes its message by value or by shared reference, not `&mut`: \
                         remove `mut`, or take the message by value",
                    ));
                }
                (&*reference.elem, true)
            }
            other => (*other, false),
        };
        errors.finish(Slot {
            message,
            by_ref,
            params: params.to_vec(),
        })
    }
}

fn check_generics(sig: &Signature, errors: &mut Errors) {
    let generics = &sig.generics;
    if generics.params.is_empty() {
        return;
    }
    let only_lifetimes = generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    let text = if only_lifetimes {
        "a slot cannot have lifetime parameters: the worker owns the message; take it by value \
         or as `&Message` without a named lifetime"
    } else {
        "a slot cannot be generic: the worker must know the concrete message type; write one \
         slot per message type"
    };
    errors.push(syn::Error::new_spanned(generics, text));
}

fn check_impl_trait(ty: &Type, errors: &mut Errors) {
    let ty = match ty {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    if let Type::ImplTrait(impl_trait) = ty {
        errors.push(syn::Error::new_spanned(
            impl_trait,
            "a slot cannot take `impl Trait`: name the concrete type",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(item: &ItemFn) -> Vec<String> {
        match Slot::from_syn(item) {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reads_message_and_params() {
        let item: ItemFn = syn::parse_quote! {
            async fn send(msg: &Order, mailer: mq::State<Mailer>, ctx: mq::Context) {}
        };
        let slot = Slot::from_syn(&item).unwrap();
        assert!(slot.by_ref);
        let message = slot.message;
        assert_eq!(quote::quote!(#message).to_string(), "Order");
        assert_eq!(slot.params.len(), 2);
    }

    #[test]
    fn reports_every_mistake_at_once() {
        let item: ItemFn = syn::parse_quote! {
            unsafe fn send<M>(msg: &mut M, other: impl Sized) {}
        };
        let errors = errors(&item);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("a slot cannot be generic"));
        assert!(errors[1].starts_with("a slot cannot be `unsafe`"));
        assert!(errors[2].starts_with("a slot cannot take `impl Trait`"));
        assert!(errors[3].contains("not `&mut`"));
    }

    #[test]
    fn needs_a_message() {
        let item: ItemFn = syn::parse_quote!(
            fn tick() {}
        );
        assert_eq!(
            errors(&item),
            ["a slot takes the message as its first argument: write e.g. `fn tick(msg: OrderPlaced)`"]
        );
    }

    #[test]
    fn refuses_self_once() {
        let item: ItemFn = syn::parse_quote!(
            fn on_ping(&self) {}
        );
        let errors = errors(&item);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("a slot cannot take `self`"));
    }

    #[test]
    fn refuses_lifetimes_with_their_own_fix() {
        let item: ItemFn = syn::parse_quote!(
            fn on_ping<'a>(msg: &'a Ping) {}
        );
        assert!(errors(&item)[0].starts_with("a slot cannot have lifetime parameters"));
    }
}
