//! The compile errors of the macros, pinned. The `.stderr` files come from the toolchain of
//! `rust-toolchain.toml`, under CI's `cargo test --workspace` (rustc words some notes after
//! the dependency graph, which `-p mq-derive` alone changes); regenerate them with
//! `TRYBUILD=overwrite cargo test --workspace --test compiletest` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
