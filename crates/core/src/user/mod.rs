//! Users: the model, the rules for creating them, search, and the service that ties them to the
//! store.

pub mod change;
pub mod filter;
pub mod import;
pub mod model;
pub mod search;
pub mod service;

pub use change::{ListOp, NameParts, RoleScope, UserChange, UserPatch, UserUpdate};
pub use filter::{Predicate, UserFilter};
pub use model::{Contact, NewUser, User, UserRef, UserStatus, UserTenant};
pub use search::{SortBy, SortField, TenantRoleFilter, TestUserFilter, UserQuery};
pub use service::UserService;
