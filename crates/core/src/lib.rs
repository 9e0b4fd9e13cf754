//! idvault-core: the domain of idvault.
//!
//! Users, projects, management keys and the provider-token vault, with the rules that make them
//! behave like Descope's hosted service. This crate must not import axum, rusqlite, sqlx, reqwest
//! or any other transport or driver: storage is reached only through the traits in [`store`], and
//! encryption only through [`secrets::Cipher`], and OAuth providers only through
//! [`provider::OAuthClient`].

pub mod access_key;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod directory;
pub mod error;
pub mod ids;
pub mod limits;
pub mod outbound;
pub mod project;
pub mod provider;
pub mod secrets;
pub mod store;
pub mod user;
pub mod vault;

pub use error::{Error, Result};
