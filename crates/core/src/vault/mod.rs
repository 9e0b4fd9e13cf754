//! The provider-token vault: a user's OAuth/OIDC tokens, encrypted at rest, handed back to the
//! application's back end on request.

pub mod model;
pub mod provider_guard;
pub mod refresh;
pub mod service;
pub mod single_flight;

pub use model::{JoinedTokenRow, ProviderToken, SealedToken, StoreTokenRequest};
pub use provider_guard::{BreakerReport, BreakerState, ProviderGuardSettings};
pub use service::{ReadOptions, VaultService, VaultSettings};
