//! The parsed form of a slot function, with its signature checked.

use syn::{FnArg, ItemFn, Type};

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
        let mut errors: Option<syn::Error> = None;
        let mut push = |error: syn::Error| match &mut errors {
            Some(first) => first.combine(error),
            None => errors = Some(error),
        };
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            push(syn::Error::new_spanned(
                &sig.generics,
                "a slot cannot be generic: the worker must know the concrete message type; \
                 write one slot per message type",
            ));
        }
        if let Some(unsafety) = &sig.unsafety {
            push(syn::Error::new_spanned(
                unsafety,
                "a slot cannot be `unsafe`",
            ));
        }
        if let Some(variadic) = &sig.variadic {
            push(syn::Error::new_spanned(
                variadic,
                "a slot cannot be variadic",
            ));
        }
        let mut types = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => push(syn::Error::new_spanned(
                    receiver,
                    "a slot cannot take `self`: make it a free function and pass what it needs \
                     as `mq::State<T>`",
                )),
                FnArg::Typed(typed) => {
                    if let Type::ImplTrait(impl_trait) = &*typed.ty {
                        push(syn::Error::new_spanned(
                            impl_trait,
                            "a slot cannot take `impl Trait`: name the concrete type",
                        ));
                    }
                    types.push(&*typed.ty);
                }
            }
        }
        let Some((first, params)) = types.split_first() else {
            push(syn::Error::new_spanned(
                &sig.ident,
                format!(
                    "a slot takes the message as its first argument, e.g. `fn {}(msg: OrderPlaced)`",
                    sig.ident
                ),
            ));
            return Err(errors.expect("an error was just pushed"));
        };
        let (message, by_ref) = match first {
            Type::Reference(reference) if reference.mutability.is_some() => {
                push(syn::Error::new_spanned(
                    reference.mutability,
                    "a slot takes its message by value or by shared reference, not `&mut`",
                ));
                (&*reference.elem, true)
            }
            Type::Reference(reference) => (&*reference.elem, true),
            other => (*other, false),
        };
        match errors {
            Some(error) => Err(error),
            None => Ok(Slot {
                message,
                by_ref,
                params: params.to_vec(),
            }),
        }
    }
}
