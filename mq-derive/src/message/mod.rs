//! `#[derive(Message)]`: parse the `#[message]` attribute, check it, expand the impl.

mod ast;
mod expand;
mod keys;
mod limits;
mod schedule;
mod versions;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    match ast::Input::from_syn(input) {
        Ok(parsed) => expand::derive(&parsed),
        Err(error) => expand::fallback(input, error),
    }
}
