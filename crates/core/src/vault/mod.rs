//! The provider-token vault: a user's OAuth/OIDC tokens, encrypted at rest, handed back to the
//! application's back end on request.

pub mod model;
pub mod service;

pub use model::{ProviderToken, SealedToken, StoreTokenRequest, TokenCipher};
pub use service::VaultService;
