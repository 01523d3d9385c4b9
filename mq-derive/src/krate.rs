//! The path generated code names mq by: `::mq`, or the one `crate = "..."` gives, for a
//! crate that renamed its dependency on mq-core (`my_mq = { package = "mq-core", ... }`).

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::{LitStr, Path};

/// `<mq>::__private`, the one module generated code names.
pub(crate) fn private(krate: Option<&Path>) -> TokenStream {
    private_at(krate, Span::call_site())
}

/// The same, spanned at `span`: where the code around it reports its errors (a missing
/// trait, a future that is not `Send`) at the user's token, so must this path.
pub(crate) fn private_at(krate: Option<&Path>, span: Span) -> TokenStream {
    match krate {
        Some(path) => quote_spanned!(span=> #path::__private),
        None => quote_spanned!(span=> ::mq::__private),
    }
}

/// The path in `crate = "..."`, or an error at the literal that shows how to write it.
pub(crate) fn read(lit: &LitStr) -> syn::Result<Path> {
    lit.parse::<Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`crate = \"{}\"` is not a path: write the name your Cargo.toml gives \
                 mq-core, e.g. `crate = \"my_mq\"` for `my_mq = {{ package = \"mq-core\", ... }}`",
                lit.value()
            ),
        )
    })
}
