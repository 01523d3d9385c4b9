//! The compile errors of the macros, pinned. The `.stderr` files come from the toolchain of
//! `rust-toolchain.toml`; regenerate them with
//! `TRYBUILD=overwrite cargo test -p mq-derive --test compiletest` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
