//! Every schema of the OpenAPI document has a name of its own. utoipa keeps one schema per name
//! in `components.schemas`: when two Rust types give the same name (two `IdBody` structs of
//! different route modules, say), the one merged last silently describes both, and the document
//! lies about the other's routes (an access key was once described as a management key that
//! way). The compiler cannot see it, as the types live in different modules; this test reads the
//! crate's source, names each type that implements `ToSchema` by its Rust path, and fails when
//! one schema name comes from two of them.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Schema name → the Rust paths of the types that give it.
type Names = BTreeMap<String, BTreeSet<String>>;

/// Walks one file, keeping the path of the module (and function) it is in.
struct Collector<'a> {
    scope: Vec<String>,
    names: &'a mut Names,
}

impl Collector<'_> {
    fn record(&mut self, schema_name: String, ident: &syn::Ident) {
        let rust_path = self.scope.iter().cloned().chain([ident.to_string()]).collect::<Vec<_>>().join("::");
        self.names.entry(schema_name).or_default().insert(rust_path);
    }

    /// For a type deriving `ToSchema`: its schema name, `#[schema(as = a::B)]` written as utoipa
    /// writes it (`a.B`), else the type's name.
    fn derived_name(attrs: &[syn::Attribute], ident: &syn::Ident) -> Option<String> {
        let derives_schema = attrs.iter().filter(|a| a.path().is_ident("derive")).any(|a| {
            let paths = a
                .parse_args_with(syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
                .unwrap();
            paths.iter().any(|p| p.segments.last().is_some_and(|s| s.ident == "ToSchema"))
        });
        if !derives_schema {
            return None;
        }
        let alias = attrs
            .iter()
            .filter(|a| a.path().is_ident("schema"))
            .find_map(|a| schema_as(a.meta.require_list().unwrap().tokens.clone()));
        Some(alias.unwrap_or_else(|| ident.to_string()))
    }
}

/// The `as = a::b::C` of a `#[schema(...)]` attribute, as `a.b.C`.
fn schema_as(tokens: TokenStream) -> Option<String> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let start = tokens.windows(2).position(|w| {
        matches!((&w[0], &w[1]), (TokenTree::Ident(i), TokenTree::Punct(p)) if i == "as" && p.as_char() == '=')
    })?;
    let mut segments = Vec::new();
    for t in &tokens[start + 2..] {
        match t {
            TokenTree::Ident(i) => segments.push(i.to_string()),
            TokenTree::Punct(p) if p.as_char() == ':' => {}
            _ => break,
        }
    }
    Some(segments.join("."))
}

/// The first string literal of a function body (what a hand-written `fn name()` answers).
#[derive(Default)]
struct FirstString(Option<String>);

impl<'ast> Visit<'ast> for FirstString {
    fn visit_lit_str(&mut self, s: &'ast syn::LitStr) {
        self.0.get_or_insert_with(|| s.value());
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.scope.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.scope.pop();
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.scope.push(format!("{}()", f.sig.ident));
        syn::visit::visit_item_fn(self, f);
        self.scope.pop();
    }

    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if let Some(name) = Self::derived_name(&s.attrs, &s.ident) {
            self.record(name, &s.ident);
        }
        syn::visit::visit_item_struct(self, s);
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        if let Some(name) = Self::derived_name(&e.attrs, &e.ident) {
            self.record(name, &e.ident);
        }
        syn::visit::visit_item_enum(self, e);
    }

    /// `impl ToSchema for T`: the name its `fn name()` answers, or utoipa's default, the type's
    /// name.
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let is_schema = i
            .trait_
            .as_ref()
            .is_some_and(|(_, p, _)| p.segments.last().is_some_and(|s| s.ident == "ToSchema"));
        if let (true, syn::Type::Path(ty)) = (is_schema, &*i.self_ty) {
            let ident = &ty.path.segments.last().unwrap().ident;
            let custom = i.items.iter().find_map(|item| match item {
                syn::ImplItem::Fn(f) if f.sig.ident == "name" => {
                    let mut first = FirstString::default();
                    first.visit_block(&f.block);
                    Some(first.0.unwrap_or_else(|| {
                        panic!("`{ident}::name()` answers no string literal this test can read")
                    }))
                }
                _ => None,
            });
            self.record(custom.unwrap_or_else(|| ident.to_string()), ident);
        }
        syn::visit::visit_item_impl(self, i);
    }
}

/// The module path of a source file of the crate: `src/routes/users/mod.rs` is
/// `idvault_api::routes::users`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut scope = vec!["idvault_api".to_owned()];
    scope.extend(relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if scope.last().is_some_and(|l| l == "mod" || l == "lib") {
        scope.pop();
    }
    scope
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every schema name the crate's source gives, with the types that give it.
fn schema_names() -> Names {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut names = Names::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        Collector { scope: module_of(&src, file), names: &mut names }.visit_file(&parsed);
    }
    names
}

#[test]
fn no_two_types_give_one_schema_name() {
    let names = schema_names();
    assert!(names.len() > 50, "the source was not read: {names:?}");
    let clashes: Vec<String> = names
        .iter()
        .filter(|(_, types)| types.len() > 1)
        .map(|(name, types)| {
            format!("`{name}` from {}", types.iter().cloned().collect::<Vec<_>>().join(" and "))
        })
        .collect();
    assert!(
        clashes.is_empty(),
        "schema names given by more than one type; the document keeps only one schema per name, so \
         give each its own (`#[schema(as = AreaThing)]` or a rename):\n  {}",
        clashes.join("\n  ")
    );
}

/// The document's every schema comes from a type the test above reads, so that a schema from
/// elsewhere (another crate's type, a generic) cannot escape it.
#[test]
fn every_schema_of_the_document_comes_from_a_type_of_the_source() {
    let names = schema_names();
    let doc = idvault_api::openapi();
    let components = doc.components.expect("components");
    let unread: Vec<&String> = components.schemas.keys().filter(|name| !names.contains_key(*name)).collect();
    assert!(
        unread.is_empty(),
        "schemas of the document whose type this test did not find in crates/api/src: {unread:?}"
    );
}
