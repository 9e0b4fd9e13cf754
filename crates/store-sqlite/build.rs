//! The migrations are embedded at compile time (`refinery::embed_migrations!`), which Cargo does
//! not know reads the `migrations` folder: without this, a new migration file is left out of an
//! incremental build until some source file of the crate changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
