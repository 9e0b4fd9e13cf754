//! Outbound apps (Descope's current token-vault API): an app is a provider configuration with the
//! app fields (`crate::provider::AppSettings`), and each app stores any number of tokens (or API
//! keys) per user, per user and tenant, or per tenant, one per granted scope set. Tokens are
//! sealed like provider tokens and refreshed through the same machinery
//! (`crate::vault::refresh`).

pub mod service;

use secrecy::SecretString;

use crate::ids::{ProviderName, UserId};

pub use service::{
    AppRequest, BatchFailure, BatchKind, BatchToken, ConnectOutcome, ConnectRequest, ConnectSettings,
    FetchRequest, OutboundService, UploadRequest,
};

/// App ids that would collide with the static routes beside `GET /v1/mgmt/outbound/app/{id}`.
pub const RESERVED_APP_IDS: &[&str] = &["create", "update", "delete", "connect", "bytemplate"];

/// Whose token it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    User(UserId),
    /// A tenant id.
    Tenant(String),
}

impl TokenOwner {
    pub fn kind(&self) -> &'static str {
        match self {
            TokenOwner::User(_) => "user",
            TokenOwner::Tenant(_) => "tenant",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            TokenOwner::User(u) => u.as_str(),
            TokenOwner::Tenant(t) => t,
        }
    }
}

/// An outbound token as the store keeps it: secrets sealed (bound to project, app, owner, tenant
/// and field), metadata in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedOutboundToken {
    pub id: String,
    pub app_id: ProviderName,
    pub owner: TokenOwner,
    /// The tenant a user token is for; "" for none, and on tenant tokens (their owner is the
    /// tenant).
    pub tenant_id: String,
    /// Sorted and without duplicates: the scope set is part of the token's identity.
    pub scopes: Vec<String>,
    /// `None` for a refresh-only upload (the first fetch refreshes).
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub access_token_type: String,
    /// Unix seconds; 0 when unknown or never.
    pub expiration: i64,
    pub granted_by: String,
    pub external_identifier: String,
    pub token_sub: String,
    /// Unix milliseconds of the last refresh; 0 for never.
    pub last_refresh_ms: i64,
    pub last_refresh_error: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Bumped by the store on every write; the compare-and-swap token of refreshes.
    pub version: i64,
    /// The provider refused the refresh token: the owner must connect again.
    pub reauth_required: bool,
}

impl SealedOutboundToken {
    /// The scope set as one string, the store's uniqueness key of (app, owner, tenant, scopes).
    pub fn scope_key(&self) -> String {
        self.scopes.join(" ")
    }

    /// The tenant column of a user token, or the owner of a tenant token, for the answer.
    pub fn tenant(&self) -> &str {
        match &self.owner {
            TokenOwner::Tenant(t) => t,
            TokenOwner::User(_) => &self.tenant_id,
        }
    }
}

impl std::fmt::Debug for SealedOutboundToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedOutboundToken")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("owner", &self.owner)
            .field("expiration", &self.expiration)
            .field("has_access_token", &self.access_token.is_some())
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("version", &self.version)
            .field("reauth_required", &self.reauth_required)
            .finish_non_exhaustive()
    }
}

/// A token opened for the caller. Secrets stay in `SecretString` until serialized on the wire.
#[derive(Debug)]
pub struct OutboundToken {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub access_token: SecretString,
    pub access_token_type: String,
    pub expiration: i64,
    pub has_refresh_token: bool,
    /// Only when asked for (`options.withRefreshToken`).
    pub refresh_token: Option<SecretString>,
    pub last_refresh_ms: i64,
    pub last_refresh_error: String,
    pub scopes: Vec<String>,
    pub granted_by: String,
    pub external_identifier: String,
    pub token_sub: String,
}

/// What a pending connect (consent) will store once the provider answers: kept with the OAuth
/// state between `connect` and the callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectIntent {
    /// The signed-in user who connects; `grantedBy` of the stored token.
    pub user_id: UserId,
    /// A tenant-level connect stores a token of this tenant; otherwise a user token for it
    /// ("" for none).
    pub tenant_id: String,
    pub tenant_level: bool,
    /// The scopes asked for (the union with those already granted), sorted.
    pub scopes: Vec<String>,
    pub external_identifier: String,
}

/// An owner's tokens of one app and tenant, when a batch upload would leave more of them than
/// the per-owner bound allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverfullSlot {
    pub app_id: ProviderName,
    pub owner: TokenOwner,
    /// The user token's tenant ("" for none; "" on tenant tokens).
    pub tenant_id: String,
}

/// Sorts and de-duplicates a scope set.
pub fn normalize_scopes(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Whether a token granted `granted` (sorted) covers every scope of `wanted`.
pub fn covers(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| granted.binary_search(w).is_ok())
}

/// The token a fetch answers among the owner's tokens for the app: of those whose scopes cover
/// `wanted` (all of them for `latest`), the most recently updated one that is not flagged for
/// re-authentication; a flagged one only when no other qualifies (the caller then answers that
/// the owner must connect again). Ties go to the larger id, so the choice is stable.
pub fn select_token(
    tokens: Vec<SealedOutboundToken>,
    wanted: Option<&[String]>,
) -> Option<SealedOutboundToken> {
    tokens.into_iter().filter(|t| wanted.is_none_or(|w| covers(&t.scopes, w))).max_by(|a, b| {
        (!a.reauth_required, a.updated_ms, &a.id).cmp(&(!b.reauth_required, b.updated_ms, &b.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, scopes: &[&str], updated_ms: i64, reauth: bool) -> SealedOutboundToken {
        SealedOutboundToken {
            id: id.into(),
            app_id: ProviderName::parse("app").unwrap(),
            owner: TokenOwner::Tenant("t".into()),
            tenant_id: String::new(),
            scopes: normalize_scopes(scopes.iter().map(|s| s.to_string()).collect()),
            access_token: None,
            refresh_token: None,
            access_token_type: String::new(),
            expiration: 0,
            granted_by: String::new(),
            external_identifier: String::new(),
            token_sub: String::new(),
            last_refresh_ms: 0,
            last_refresh_error: String::new(),
            created_ms: 0,
            updated_ms,
            version: 1,
            reauth_required: reauth,
        }
    }

    fn pick(tokens: Vec<SealedOutboundToken>, wanted: Option<&[&str]>) -> Option<String> {
        let wanted: Option<Vec<String>> = wanted.map(|w| w.iter().map(|s| s.to_string()).collect());
        select_token(tokens, wanted.as_deref()).map(|t| t.id)
    }

    #[test]
    fn by_scopes_picks_the_newest_token_that_covers_them() {
        let tokens = || {
            vec![
                token("a", &["read"], 10, false),
                token("b", &["read", "write"], 5, false),
                token("c", &["write"], 20, false),
            ]
        };
        assert_eq!(pick(tokens(), Some(&["read"])).as_deref(), Some("a"));
        assert_eq!(pick(tokens(), Some(&["write", "read"])).as_deref(), Some("b"));
        assert_eq!(pick(tokens(), Some(&["admin"])), None);
        assert_eq!(pick(tokens(), None).as_deref(), Some("c"));
        assert_eq!(pick(tokens(), Some(&[])).as_deref(), Some("c"));
    }

    #[test]
    fn a_flagged_token_is_chosen_only_when_nothing_else_qualifies() {
        let tokens = vec![token("old", &["read"], 1, false), token("new", &["read"], 9, true)];
        assert_eq!(pick(tokens, Some(&["read"])).as_deref(), Some("old"));
        let only_flagged = vec![token("new", &["read"], 9, true)];
        assert_eq!(pick(only_flagged, None).as_deref(), Some("new"));
    }
}
