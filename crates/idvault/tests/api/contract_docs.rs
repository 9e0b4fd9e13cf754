//! The contract text of docs/api.md that the code declares (the error table, the limits table)
//! is the code's rendering of it (`idvault_api::docs`), as docs/openapi.json is the served
//! document.
//!
//! After a deliberate change, regenerate it with
//! `UPDATE_DOCS=1 cargo test -p idvault --test api contract_docs` and commit docs/api.md.

use std::path::PathBuf;

#[test]
fn api_md_shows_the_error_and_limits_tables_the_code_declares() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let committed = std::fs::read_to_string(&path).expect("docs/api.md");
    let rendered = idvault_api::docs::render_api_md(&committed)
        .unwrap_or_else(|e| panic!("docs/api.md lost a generated block's markers: {e}"));
    if rendered == committed {
        return;
    }
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first_difference = committed
        .lines()
        .zip(rendered.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("line {}:\n  committed: {a}\n  rendered:  {b}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".to_owned());
    panic!(
        "docs/api.md's generated tables differ from the code (crates/api/src/error.rs, \
         idvault_core::limits, crates/api/src/docs.rs); first difference at {first_difference}\n\
         If the change is deliberate, regenerate it with\n  \
         UPDATE_DOCS=1 cargo test -p idvault --test api contract_docs\nand commit docs/api.md."
    );
}

#[test]
fn every_limit_the_core_declares_is_in_the_limits_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/src/limits.rs");
    let source = std::fs::read_to_string(&path).expect("crates/core/src/limits.rs");
    let undocumented = idvault_api::docs::undocumented_limits(&source);
    assert!(
        undocumented.is_empty(),
        "idvault_core::limits declares limits that docs/api.md does not show: {undocumented:?}; add \
         a row in crates/api/src/docs.rs (or list them there as internal)"
    );
}
