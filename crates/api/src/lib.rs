//! idvault-api: the HTTP layer. Speaks the Descope Management API (JSON, camelCase, Descope error
//! bodies) on top of the domain services in idvault-core.
//!
//! Handlers are thin: authorise, parse the wire DTO into domain types, call one service method,
//! map the result back to a DTO. Wire types live in `dto` modules, separate from the domain.
//! Must not import a database driver.

pub mod docs;
pub mod error;
pub mod extract;
pub mod fields;
pub mod import;
pub mod observe;
pub mod openapi;
pub mod proxy;
pub mod ratelimit;
pub mod router;
pub mod routes;
pub mod state;

pub use observe::{MetricsRoute, RenderMetrics};
pub use proxy::TrustedProxies;
pub use ratelimit::{FailureLimit, RateLimit};
pub use router::{metrics_router, openapi, router, HttpSettings};
pub use state::AppState;
