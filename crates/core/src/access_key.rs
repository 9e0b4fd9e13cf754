//! Access keys: machine-to-machine credentials, managed with a management key
//! (`/v1/mgmt/accesskey/*`) and exchanged for a session JWT (`/v1/auth/accesskey/exchange`) that
//! the SDKs' `validate_session` accepts.
//!
//! A key is shown once, at creation or rotation, as `<keyId>.<secret>`, and stored only as the
//! SHA-256 of that whole string: as for management keys (see [`crate::project`]), the secret is
//! 256 random bits, so a slow password hash would buy nothing, and the digest comparison is
//! constant-time. The key id in front lets the store find the record without comparing secrets.
//!
//! The session of an exchange carries the key's authorization as Descope puts it in a session
//! JWT: `sub` is the key id, `roles` and `permissions` are project-level, `tenants` maps each
//! tenant id to its `roles` and `permissions`. A key bound to a user (`userId` at creation) carries
//! that user's authorization instead, read at each exchange. Roles and tenants deleted since the
//! key was made are left out, so a deleted role grants nothing. The key's own `customClaims` (set
//! with a management key) are top-level claims; the ones the exchange itself asks for
//! (`loginOptions.customClaims`, sent by whoever holds the key) go under `nsec`, as Descope puts
//! every custom claim a client adds, so that a backend never mistakes them for the key's.
//!
//! The exchange answers `keyId`, `sessionJwt` and `expiration`, as Descope's does: no refresh JWT
//! (a machine exchanges its key again instead of refreshing).
//!
//! An exchange is refused for a deactivated key, an expired key (`expireTime`, Unix seconds; 0
//! never expires), a key whose `permittedIps` do not include the client's address, and a key bound
//! to a user that no longer exists or may not sign in. Nothing here logs a key or a session.
//!
//! Audited: each key created, changed ((de)activated, rotated, updated: which fields) and deleted,
//! with the management key as actor; each exchange, as `LoginSucceed` by the key or `LoginFailed`
//! with why. A record names a key by its id only: never its secret or digest, nor a custom
//! claim's value.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{actions, failure_reason, Actor, AuditRecord};
use crate::auth::SessionSigner;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::store::SharedStore;
use crate::user::{UserRef, UserService, UserStatus};

/// Length of an access key id: `K` and 27 alphanumerics, like Descope's.
pub const KEY_ID_LEN: usize = 28;
/// Most distinct tenants whose names are read one by one when keys are answered; past this, the
/// project's tenants are listed once instead.
const TENANT_NAME_READS: usize = 16;
/// Most access keys per project.
pub const MAX_ACCESS_KEYS: u64 = 10_000;
/// Most ids in one batch call.
pub const MAX_BATCH_IDS: usize = 1000;
/// Most entries of `permittedIps`.
pub const MAX_PERMITTED_IPS: usize = 100;
/// Most roles of a key, or of a key in one tenant; most tenants of a key.
pub const MAX_KEY_ROLES: usize = crate::limits::MAX_LIST_ITEMS;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Claims an exchange sets itself: custom claims may not replace them.
const RESERVED_CLAIMS: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "drn",
    "amr",
    "roles",
    "permissions",
    "tenants",
    "dct",
    "sid",
    "gen",
    "dsub",
    // The claims the exchange's caller added (see the module comment).
    "nsec",
];

/// A key's roles in one tenant. The tenant's name is filled in when a key is answered; it is not
/// stored with the key, so that renaming a tenant shows at once (as for a user's tenants).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyTenant {
    pub tenant_id: String,
    #[serde(default)]
    pub role_names: Vec<String>,
    /// Empty for a tenant deleted since.
    #[serde(skip)]
    pub tenant_name: String,
}

/// A stored access key: everything but the secret.
#[derive(Clone, PartialEq)]
pub struct AccessKey {
    pub id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    /// Project-level roles.
    pub role_names: Vec<String>,
    pub key_tenants: Vec<KeyTenant>,
    pub active: bool,
    /// Unix seconds; 0 for a key that does not expire.
    pub expire_time: i64,
    /// Who created the key: the management key id of the request.
    pub created_by: String,
    /// The user whose authorization the key carries; empty for none.
    pub bound_user_id: String,
    pub custom_claims: Map<String, Value>,
    pub custom_attributes: Map<String, Value>,
    /// Addresses and CIDR ranges the key may be exchanged from; empty for anywhere.
    pub permitted_ips: Vec<String>,
    /// SHA-256 of the full key string.
    pub secret_hash: [u8; 32],
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest is not the secret, but there is no reason to print it either.
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("active", &self.active)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expire_time != 0 && self.expire_time.saturating_mul(1000) <= now_ms
    }
}

/// A freshly made (or rotated) key: the record to store and the cleartext to show once.
pub struct IssuedAccessKey {
    pub key: AccessKey,
    pub cleartext: SecretString,
}

pub fn hash_secret(cleartext: &str) -> [u8; 32] {
    Sha256::digest(cleartext.as_bytes()).into()
}

fn new_key_id() -> String {
    let tail: String =
        rand::thread_rng().sample_iter(&Alphanumeric).take(KEY_ID_LEN - 1).map(char::from).collect();
    format!("K{tail}")
}

/// A new cleartext for key `id`: `<id>.<43 base64url characters>` (256 random bits). Neither part
/// has a `:`, which separates the project from the key in the `Authorization` header.
fn new_cleartext(id: &str) -> SecretString {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(secret.as_mut());
    SecretString::from(format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret.as_ref())))
}

/// The key id of a presented key, without judging the secret part.
pub fn key_id_of(presented: &str) -> Option<&str> {
    let (id, secret) = presented.split_once('.')?;
    let well_formed = id.len() == KEY_ID_LEN
        && id.starts_with('K')
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !secret.is_empty();
    well_formed.then_some(id)
}

/// Constant-time check of a presented key against its stored record.
pub fn secret_matches(key: &AccessKey, presented: &str) -> bool {
    bool::from(hash_secret(presented).ct_eq(&key.secret_hash))
}

/// One entry of `permittedIps`: an address, or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4
/// peers) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl IpRange {
    pub fn parse(text: &str) -> Option<IpRange> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network = canonical(addr.parse::<IpAddr>().ok()?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
            Some(_) => return None,
        };
        (prefix <= max).then_some(IpRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether `peer` may use a key with these permitted IPs. An unknown peer may not use a key that
/// names any: the restriction fails closed.
pub fn ip_permitted(permitted: &[String], peer: Option<IpAddr>) -> bool {
    if permitted.is_empty() {
        return true;
    }
    let Some(peer) = peer else { return false };
    permitted.iter().filter_map(|p| IpRange::parse(p)).any(|r| r.contains(peer))
}

fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::MissingArgument("name"));
    }
    if name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

fn validate_description(description: &str) -> Result<String> {
    if description.len() > MAX_DESCRIPTION_LEN {
        return Err(Error::invalid("description", format!("longer than {MAX_DESCRIPTION_LEN} bytes")));
    }
    Ok(description.to_owned())
}

fn validate_permitted_ips(ips: Vec<String>) -> Result<Vec<String>> {
    if ips.len() > MAX_PERMITTED_IPS {
        return Err(Error::invalid("permittedIps", format!("more than {MAX_PERMITTED_IPS} entries")));
    }
    let mut out = Vec::with_capacity(ips.len());
    for ip in ips {
        let ip = ip.trim().to_owned();
        if ip.len() > 64 || IpRange::parse(&ip).is_none() {
            return Err(Error::invalid("permittedIps", "each entry must be an IP address or a CIDR range"));
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

fn json_size(map: &Map<String, Value>) -> usize {
    serde_json::to_string(map).map_or(usize::MAX, |s| s.len())
}

/// A key's own claims, top-level in its sessions: none may replace a claim the session sets.
fn validate_custom_claims(field: &'static str, claims: Map<String, Value>) -> Result<Map<String, Value>> {
    if let Some(name) = claims.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str()) || k.is_empty()) {
        return Err(Error::invalid(field, format!("'{name}' is set by the session itself")));
    }
    validate_claims_size(field, claims)
}

/// Claims of any name, bounded in size: those an exchange asks for, which sit under `nsec` where
/// they cannot replace the session's own.
fn validate_claims_size(field: &'static str, claims: Map<String, Value>) -> Result<Map<String, Value>> {
    if json_size(&claims) > crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES {
        return Err(Error::invalid(
            field,
            format!("larger than {} bytes of JSON", crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES),
        ));
    }
    Ok(claims)
}

fn validate_custom_attributes(attributes: Map<String, Value>) -> Result<Map<String, Value>> {
    if json_size(&attributes) > crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES {
        return Err(Error::invalid(
            "customAttributes",
            format!("larger than {} bytes of JSON", crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES),
        ));
    }
    Ok(attributes)
}

fn distinct(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// An audit record about key `id`.
fn key_record(project: &ProjectId, action: &str, id: &str) -> AuditRecord {
    AuditRecord::new(project, action).data("keyId", id)
}

/// The fields an update changed, by name (the values of custom claims and attributes may be
/// anything an application put there, so they are not recorded).
fn changed_fields(before: &AccessKey, after: &AccessKey) -> Vec<&'static str> {
    let mut fields = Vec::new();
    for (field, changed) in [
        ("name", before.name != after.name),
        ("description", before.description != after.description),
        ("roleNames", before.role_names != after.role_names),
        ("keyTenants", before.key_tenants != after.key_tenants),
        ("customClaims", before.custom_claims != after.custom_claims),
        ("permittedIps", before.permitted_ips != after.permitted_ips),
        ("customAttributes", before.custom_attributes != after.custom_attributes),
    ] {
        if changed {
            fields.push(field);
        }
    }
    fields
}

/// What `create` is given.
#[derive(Debug, Clone, Default)]
pub struct NewAccessKey {
    pub name: String,
    /// Unix seconds; 0 (or absent) for a key that does not expire.
    pub expire_time: i64,
    pub role_names: Vec<String>,
    pub key_tenants: Vec<KeyTenant>,
    pub user_id: Option<String>,
    pub custom_claims: Map<String, Value>,
    pub description: Option<String>,
    pub permitted_ips: Vec<String>,
    pub custom_attributes: Map<String, Value>,
}

/// What `update` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccessKeyChanges {
    pub name: String,
    pub description: Option<String>,
    pub role_names: Option<Vec<String>>,
    pub key_tenants: Option<Vec<KeyTenant>>,
    pub custom_claims: Option<Map<String, Value>>,
    pub permitted_ips: Option<Vec<String>>,
    pub custom_attributes: Option<Map<String, Value>>,
}

/// Search filters; each one given must match.
#[derive(Debug, Clone, Default)]
pub struct AccessKeyFilter {
    /// Keys with any of these tenants.
    pub tenant_ids: Vec<String>,
    pub bound_user_id: Option<String>,
    pub creating_user: Option<String>,
    /// Keys whose custom attributes have each of these values.
    pub custom_attributes: Map<String, Value>,
}

impl AccessKeyFilter {
    /// Filter values are bounded like the user search's: a value longer than any stored id or
    /// name could match nothing, and is refused rather than compared.
    fn validate(&self) -> Result<()> {
        use crate::limits::{MAX_FIELD_LEN, MAX_FILTER_VALUES};
        if self.tenant_ids.len() > MAX_FILTER_VALUES
            || self.tenant_ids.iter().any(|t| t.len() > MAX_FIELD_LEN)
        {
            return Err(Error::invalid(
                "tenantIds",
                format!("at most {MAX_FILTER_VALUES} values of at most {MAX_FIELD_LEN} bytes"),
            ));
        }
        for (field, value) in [("boundUserId", &self.bound_user_id), ("creatingUser", &self.creating_user)] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD_LEN) {
                return Err(Error::invalid(field, format!("at most {MAX_FIELD_LEN} bytes")));
            }
        }
        let attributes =
            serde_json::to_string(&self.custom_attributes).map(|s| s.len()).unwrap_or(usize::MAX);
        if attributes > crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES {
            return Err(Error::invalid(
                "customAttributes",
                format!("at most {} bytes as JSON", crate::limits::MAX_CUSTOM_ATTRIBUTES_BYTES),
            ));
        }
        Ok(())
    }

    fn matches(&self, key: &AccessKey) -> bool {
        (self.tenant_ids.is_empty() || key.key_tenants.iter().any(|t| self.tenant_ids.contains(&t.tenant_id)))
            && self.bound_user_id.as_deref().filter(|u| !u.is_empty()).is_none_or(|u| key.bound_user_id == u)
            && self.creating_user.as_deref().filter(|u| !u.is_empty()).is_none_or(|u| key.created_by == u)
            && self.custom_attributes.iter().all(|(k, v)| key.custom_attributes.get(k) == Some(v))
    }
}

/// What an exchange may ask for (Descope's `loginOptions`).
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    /// Put in the session's `nsec` claim: the caller's, not the key's (see the module comment).
    pub custom_claims: Map<String, Value>,
    /// One of the key's tenants, put in the session as `dct`.
    pub selected_tenant: Option<String>,
}

/// The answer of an exchange.
pub struct ExchangedSession {
    pub key_id: String,
    pub session_jwt: String,
    /// Unix seconds.
    pub expiration: i64,
}

#[derive(Clone)]
pub struct AccessKeyService {
    store: SharedStore,
    signer: Arc<dyn SessionSigner>,
    users: UserService,
    clock: SharedClock,
    session_ttl: Duration,
}

impl AccessKeyService {
    pub fn new(
        store: SharedStore,
        signer: Arc<dyn SessionSigner>,
        users: UserService,
        clock: SharedClock,
        session_ttl: Duration,
    ) -> Self {
        Self { store, signer, users, clock, session_ttl }
    }

    /// Refuses roles and tenants the directory does not have: a tenant role is a role of that
    /// tenant or a project role.
    async fn check_references(
        &self,
        project: &ProjectId,
        role_names: &[String],
        key_tenants: &[KeyTenant],
    ) -> Result<()> {
        if role_names.len() > MAX_KEY_ROLES || key_tenants.len() > MAX_KEY_ROLES {
            return Err(Error::invalid("roleNames", format!("more than {MAX_KEY_ROLES} entries")));
        }
        if role_names.is_empty() && key_tenants.is_empty() {
            return Ok(());
        }
        let roles = self.store.list_roles(project).await?;
        let has_role = |tenant: Option<&str>, name: &str| {
            roles
                .iter()
                .any(|r| r.name == name && (r.tenant_id.is_none() || r.tenant_id.as_deref() == tenant))
        };
        if let Some(missing) = role_names.iter().find(|r| !has_role(None, r)) {
            return Err(Error::NotFound(format!("role '{missing}'")));
        }
        for t in key_tenants {
            if t.tenant_id.is_empty() {
                return Err(Error::MissingArgument("keyTenants.tenantId"));
            }
            if t.role_names.len() > MAX_KEY_ROLES {
                return Err(Error::invalid(
                    "keyTenants.roleNames",
                    format!("more than {MAX_KEY_ROLES} entries"),
                ));
            }
            if self.store.get_tenant(project, &t.tenant_id).await?.is_none() {
                return Err(Error::NotFound(format!("tenant '{}'", t.tenant_id)));
            }
            if let Some(missing) = t.role_names.iter().find(|r| !has_role(Some(&t.tenant_id), r)) {
                return Err(Error::NotFound(format!("role '{missing}' in tenant '{}'", t.tenant_id)));
            }
        }
        Ok(())
    }

    fn normalize_tenants(tenants: Vec<KeyTenant>) -> Result<Vec<KeyTenant>> {
        let mut out: Vec<KeyTenant> = Vec::with_capacity(tenants.len());
        for t in tenants {
            if out.iter().any(|o| o.tenant_id == t.tenant_id) {
                return Err(Error::invalid("keyTenants", format!("tenant '{}' appears twice", t.tenant_id)));
            }
            out.push(KeyTenant {
                tenant_id: t.tenant_id,
                role_names: distinct(t.role_names),
                ..KeyTenant::default()
            });
        }
        Ok(out)
    }

    /// Creates a key; answers it with its cleartext, which is not kept.
    pub async fn create(
        &self,
        project: &ProjectId,
        created_by: &str,
        new: NewAccessKey,
    ) -> Result<IssuedAccessKey> {
        let name = validate_name(&new.name)?;
        if new.expire_time < 0 {
            return Err(Error::invalid(
                "expireTime",
                "must be Unix seconds, or 0 for a key that does not expire",
            ));
        }
        let description = validate_description(new.description.as_deref().unwrap_or_default())?;
        let role_names = distinct(new.role_names);
        let key_tenants = Self::normalize_tenants(new.key_tenants)?;
        let bound_user_id = match new.user_id.filter(|u| !u.is_empty()) {
            Some(u) => {
                // Descope: the bound user's authorization replaces the key's own.
                let id = UserId::parse(&u).map_err(|_| Error::invalid("userId", "not a user id"))?;
                self.users.load(project, &UserRef::UserId(id)).await?;
                u
            }
            None => String::new(),
        };
        self.check_references(project, &role_names, &key_tenants).await?;
        let now = self.clock.now_ms();
        let id = new_key_id();
        let cleartext = new_cleartext(&id);
        let key = AccessKey {
            secret_hash: hash_secret(cleartext.expose_secret()),
            id,
            project_id: project.clone(),
            name,
            description,
            role_names,
            key_tenants,
            active: true,
            expire_time: new.expire_time,
            created_by: created_by.to_owned(),
            bound_user_id,
            custom_claims: validate_custom_claims("customClaims", new.custom_claims)?,
            custom_attributes: validate_custom_attributes(new.custom_attributes)?,
            permitted_ips: validate_permitted_ips(new.permitted_ips)?,
            created_ms: now,
            updated_ms: now,
        };
        if !self.store.insert_access_key(&key, MAX_ACCESS_KEYS).await? {
            return Err(Error::TooManyRequests(
                "the project has the most access keys it may have: delete some first",
            ));
        }
        tracing::info!(project = %project, key_id = %key.id, "access key created");
        let mut record = key_record(project, actions::ACCESS_KEY_CREATED, &key.id)
            .data("name", key.name.as_str())
            .data("roleNames", key.role_names.clone())
            .data("keyTenants", json!(key.key_tenants))
            .data("expireTime", key.expire_time)
            .tenants(key.key_tenants.iter().map(|t| t.tenant_id.clone()).collect());
        if !key.bound_user_id.is_empty() {
            record = record.user(&key.bound_user_id);
        }
        self.users.audit().record(record);
        // Stored and recorded: the answer names the tenants, as every answer about a key does.
        let mut key = key;
        self.name_tenants(project, std::slice::from_mut(&mut key)).await?;
        Ok(IssuedAccessKey { key, cleartext })
    }

    /// The stored key, its tenants unnamed.
    async fn fetch(&self, project: &ProjectId, id: &str) -> Result<AccessKey> {
        if id.is_empty() {
            return Err(Error::MissingArgument("id"));
        }
        self.store
            .get_access_key(project, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("access key '{id}'")))
    }

    /// The key as answered: its tenants named.
    pub async fn load(&self, project: &ProjectId, id: &str) -> Result<AccessKey> {
        let mut key = self.fetch(project, id).await?;
        self.name_tenants(project, std::slice::from_mut(&mut key)).await?;
        Ok(key)
    }

    /// The project's keys that match, oldest first, their tenants named.
    pub async fn search(&self, project: &ProjectId, filter: &AccessKeyFilter) -> Result<Vec<AccessKey>> {
        filter.validate()?;
        let keys = self.store.list_access_keys(project).await?;
        let mut keys: Vec<AccessKey> = keys.into_iter().filter(|k| filter.matches(k)).collect();
        self.name_tenants(project, &mut keys).await?;
        Ok(keys)
    }

    /// Fills in each key tenant's name as the directory has it now; a tenant deleted since keeps
    /// an empty name. A few tenants are read one by one, many by listing the project's tenants
    /// once, so that neither a single load nor a search of many keys costs a read per tenant.
    async fn name_tenants(&self, project: &ProjectId, keys: &mut [AccessKey]) -> Result<()> {
        let mut ids: Vec<String> = Vec::new();
        for t in keys.iter().flat_map(|k| &k.key_tenants) {
            if !ids.contains(&t.tenant_id) {
                ids.push(t.tenant_id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut names = std::collections::HashMap::with_capacity(ids.len());
        if ids.len() <= TENANT_NAME_READS {
            for id in ids {
                if let Some(tenant) = self.store.get_tenant(project, &id).await? {
                    names.insert(id, tenant.name);
                }
            }
        } else {
            for tenant in self.store.list_tenants(project).await? {
                if ids.contains(&tenant.id) {
                    names.insert(tenant.id, tenant.name);
                }
            }
        }
        for t in keys.iter_mut().flat_map(|k| k.key_tenants.iter_mut()) {
            t.tenant_name = names.get(&t.tenant_id).cloned().unwrap_or_default();
        }
        Ok(())
    }

    /// Changes the key's descriptive fields and authorization; answers the stored key.
    pub async fn update(
        &self,
        project: &ProjectId,
        id: &str,
        changes: AccessKeyChanges,
    ) -> Result<AccessKey> {
        let before = self.fetch(project, id).await?;
        let mut key = before.clone();
        key.name = validate_name(&changes.name)?;
        if let Some(d) = changes.description {
            key.description = validate_description(&d)?;
        }
        if let Some(r) = changes.role_names {
            key.role_names = distinct(r);
        }
        if let Some(t) = changes.key_tenants {
            key.key_tenants = Self::normalize_tenants(t)?;
        }
        if let Some(c) = changes.custom_claims {
            key.custom_claims = validate_custom_claims("customClaims", c)?;
        }
        if let Some(ips) = changes.permitted_ips {
            key.permitted_ips = validate_permitted_ips(ips)?;
        }
        if let Some(a) = changes.custom_attributes {
            key.custom_attributes = validate_custom_attributes(a)?;
        }
        self.check_references(project, &key.role_names, &key.key_tenants).await?;
        key.updated_ms = self.clock.now_ms();
        if !self.store.update_access_key(project, &key).await? {
            return Err(Error::NotFound(format!("access key '{id}'")));
        }
        self.users.audit().record(
            key_record(project, actions::ACCESS_KEY_MODIFIED, &key.id)
                .data("change", "update")
                .data("fields", changed_fields(&before, &key))
                .data("roleNames", key.role_names.clone())
                .data("keyTenants", json!(key.key_tenants))
                .tenants(key.key_tenants.iter().map(|t| t.tenant_id.clone()).collect()),
        );
        self.load(project, id).await
    }

    fn check_ids(ids: &[String]) -> Result<()> {
        if ids.is_empty() || ids.iter().any(String::is_empty) {
            return Err(Error::MissingArgument("ids"));
        }
        if ids.len() > MAX_BATCH_IDS {
            return Err(Error::invalid("ids", format!("more than {MAX_BATCH_IDS} ids")));
        }
        Ok(())
    }

    fn unknown(missing: Vec<String>) -> Result<()> {
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(Error::NotFound(format!("access key '{first}'"))),
        }
    }

    /// Activates or deactivates keys, all or none (an unknown id changes nothing).
    pub async fn set_active(&self, project: &ProjectId, ids: &[String], active: bool) -> Result<()> {
        Self::check_ids(ids)?;
        let missing = self.store.set_access_keys_active(project, ids, active, self.clock.now_ms()).await?;
        Self::unknown(missing)?;
        tracing::info!(project = %project, keys = ids.len(), active, "access keys (de)activated");
        let change = if active { "activate" } else { "deactivate" };
        for id in ids {
            self.users
                .audit()
                .record(key_record(project, actions::ACCESS_KEY_MODIFIED, id).data("change", change));
        }
        Ok(())
    }

    /// Deletes keys, all or none (an unknown id deletes nothing).
    pub async fn delete(&self, project: &ProjectId, ids: &[String]) -> Result<()> {
        Self::check_ids(ids)?;
        Self::unknown(self.store.delete_access_keys(project, ids).await?)?;
        tracing::info!(project = %project, keys = ids.len(), "access keys deleted");
        for id in ids {
            self.users.audit().record(key_record(project, actions::ACCESS_KEY_DELETED, id));
        }
        Ok(())
    }

    /// A new secret for the key; the previous one stops working at once.
    pub async fn rotate(&self, project: &ProjectId, id: &str) -> Result<IssuedAccessKey> {
        let key = self.fetch(project, id).await?;
        let cleartext = new_cleartext(&key.id);
        let hash = hash_secret(cleartext.expose_secret());
        if !self.store.replace_access_key_secret(project, id, &hash, self.clock.now_ms()).await? {
            return Err(Error::NotFound(format!("access key '{id}'")));
        }
        tracing::info!(project = %project, key_id = %id, "access key rotated");
        self.users
            .audit()
            .record(key_record(project, actions::ACCESS_KEY_MODIFIED, id).data("change", "rotate"));
        let key = self.load(project, id).await?;
        Ok(IssuedAccessKey { key, cleartext })
    }

    /// Exchanges a presented key for a session JWT. `peer` is the client's address: the TCP
    /// peer, or the client a trusted reverse proxy forwarded (the HTTP layer decides). Audited:
    /// `LoginSucceed` by the key, or `LoginFailed` with why (the key id named only when it is a
    /// key of the project; nothing for a project that does not exist, whose trail nobody can read).
    pub async fn exchange(
        &self,
        project: &ProjectId,
        presented: &str,
        peer: Option<IpAddr>,
        options: ExchangeOptions,
    ) -> Result<ExchangedSession> {
        if presented.is_empty() {
            return Err(Error::Unauthorized("an access key is required: 'Bearer <projectId>:<accessKey>'"));
        }
        let mut known_key = None;
        let result = self.exchange_key(project, presented, peer, options, &mut known_key).await;
        match &result {
            Ok(session) => {
                let mut record = key_record(project, actions::LOGIN_SUCCEED, &session.key_id)
                    .actor(Actor::AccessKey { id: session.key_id.clone() })
                    .method("accessKey");
                if let Some(key) = &known_key {
                    if !key.bound_user_id.is_empty() {
                        record = record.user(&key.bound_user_id);
                    }
                }
                self.users.audit().record(record);
            }
            Err(error) => {
                if known_key.is_none() && !matches!(self.store.get_project(project).await, Ok(Some(_))) {
                    return result;
                }
                let mut record = AuditRecord::new(project, actions::LOGIN_FAILED)
                    .kind("warn")
                    .method("accessKey")
                    .data("error_message", failure_reason(error));
                if let Some(key) = &known_key {
                    record = record.data("keyId", key.id.as_str());
                    if !key.bound_user_id.is_empty() {
                        record = record.user(&key.bound_user_id);
                    }
                }
                self.users.audit().record(record);
            }
        }
        result
    }

    /// [`Self::exchange`] without the audit; `known_key` is set once the presented key is found
    /// to be one of the project's (whatever its secret).
    async fn exchange_key(
        &self,
        project: &ProjectId,
        presented: &str,
        peer: Option<IpAddr>,
        options: ExchangeOptions,
        known_key: &mut Option<AccessKey>,
    ) -> Result<ExchangedSession> {
        let id = key_id_of(presented).ok_or(Error::WrongAccessKey)?;
        let key = self.store.get_access_key(project, id).await?.ok_or(Error::WrongAccessKey)?;
        *known_key = Some(key.clone());
        if !secret_matches(&key, presented) {
            return Err(Error::WrongAccessKey);
        }
        let now = self.clock.now_ms();
        if !key.active {
            return Err(Error::Unauthorized("the access key is deactivated"));
        }
        if key.expired(now) {
            return Err(Error::Unauthorized("the access key has expired"));
        }
        if !ip_permitted(&key.permitted_ips, peer) {
            tracing::info!(project = %project, key_id = %key.id, "access key refused from an address it does not permit");
            return Err(Error::Unauthorized("the access key may not be used from this address"));
        }
        let custom_claims = validate_claims_size("loginOptions.customClaims", options.custom_claims)?;
        let (roles, permissions, tenants) = self.authorization(project, &key).await?;
        let now_secs = now.div_euclid(1000);
        let ttl = i64::try_from(self.session_ttl.as_secs()).unwrap_or(600);
        let mut exp = now_secs.saturating_add(ttl);
        if key.expire_time != 0 {
            // A session never outlives its key.
            exp = exp.min(key.expire_time);
        }
        let mut claims = key.custom_claims.clone();
        if !custom_claims.is_empty() {
            claims.insert("nsec".into(), Value::Object(custom_claims));
        }
        if let Some(tenant) = options.selected_tenant.filter(|t| !t.is_empty()) {
            if !tenants.contains_key(&tenant) {
                return Err(Error::invalid("loginOptions.selectedTenant", "the key has no such tenant"));
            }
            claims.insert("dct".into(), json!(tenant));
        }
        claims.insert("sub".into(), json!(key.id));
        claims.insert("iss".into(), json!(project.as_str()));
        claims.insert("iat".into(), json!(now_secs));
        claims.insert("exp".into(), json!(exp));
        claims.insert("drn".into(), json!("DS"));
        claims.insert("amr".into(), json!(["accesskey"]));
        claims.insert("roles".into(), json!(roles));
        claims.insert("permissions".into(), json!(permissions));
        claims.insert("tenants".into(), Value::Object(tenants));
        let session_jwt = self.signer.sign(project, &claims).await?;
        tracing::debug!(project = %project, key_id = %key.id, "access key exchanged");
        Ok(ExchangedSession { key_id: key.id, session_jwt, expiration: exp })
    }

    /// Roles, permissions and tenants of the session: the bound user's, or the key's own minus
    /// what was deleted from the directory since.
    async fn authorization(
        &self,
        project: &ProjectId,
        key: &AccessKey,
    ) -> Result<(Vec<String>, BTreeSet<String>, Map<String, Value>)> {
        let roles = self.store.list_roles(project).await?;
        let project_permissions = |names: &[String]| {
            let mut out = BTreeSet::new();
            for role in roles.iter().filter(|r| r.tenant_id.is_none() && names.contains(&r.name)) {
                out.extend(role.permission_names.iter().cloned());
            }
            out
        };
        let mut tenants = Map::new();
        if !key.bound_user_id.is_empty() {
            let refused = Error::Unauthorized("the access key's user no longer exists or may not sign in");
            let Ok(id) = UserId::parse(&key.bound_user_id) else { return Err(refused) };
            let user = match self.users.load(project, &UserRef::UserId(id)).await {
                Ok(u) => u,
                Err(Error::UserNotFound) => return Err(refused),
                Err(e) => return Err(e),
            };
            if matches!(user.status, UserStatus::Disabled | UserStatus::Expired) {
                return Err(refused);
            }
            for t in &user.tenants {
                tenants.insert(
                    t.tenant_id.clone(),
                    json!({"roles": t.role_names, "permissions": t.permissions}),
                );
            }
            let permissions = project_permissions(&user.role_names);
            return Ok((user.role_names, permissions, tenants));
        }
        let own: Vec<String> = key
            .role_names
            .iter()
            .filter(|n| roles.iter().any(|r| r.tenant_id.is_none() && &r.name == *n))
            .cloned()
            .collect();
        for t in &key.key_tenants {
            if self.store.get_tenant(project, &t.tenant_id).await?.is_none() {
                continue;
            }
            let mut names = Vec::new();
            let mut permissions = BTreeSet::new();
            for name in &t.role_names {
                // A tenant's own role of that name shadows the project role.
                let role = roles
                    .iter()
                    .find(|r| &r.name == name && r.tenant_id.as_deref() == Some(&t.tenant_id))
                    .or_else(|| roles.iter().find(|r| &r.name == name && r.tenant_id.is_none()));
                if let Some(role) = role {
                    names.push(name.clone());
                    permissions.extend(role.permission_names.iter().cloned());
                }
            }
            tenants.insert(t.tenant_id.clone(), json!({"roles": names, "permissions": permissions}));
        }
        let permissions = project_permissions(&own);
        Ok((own, permissions, tenants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn addresses_and_ranges_match_as_written() {
        let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(ip_permitted(&[], None), "no restriction");
        assert!(!ip_permitted(&list(&["127.0.0.1"]), None), "an unknown peer fails closed");
        assert!(ip_permitted(&list(&["127.0.0.1"]), Some(ip("127.0.0.1"))));
        assert!(ip_permitted(&list(&["127.0.0.1"]), Some(ip("::ffff:127.0.0.1"))), "v4-mapped peer");
        assert!(!ip_permitted(&list(&["10.0.0.0/8", "192.168.1.7"]), Some(ip("127.0.0.1"))));
        assert!(ip_permitted(&list(&["10.0.0.0/8"]), Some(ip("10.200.3.4"))));
        assert!(!ip_permitted(&list(&["10.0.0.0/8"]), Some(ip("11.0.0.1"))));
        assert!(ip_permitted(&list(&["0.0.0.0/0"]), Some(ip("8.8.8.8"))));
        assert!(ip_permitted(&list(&["2001:db8::/32"]), Some(ip("2001:db8:1::5"))));
        assert!(!ip_permitted(&list(&["2001:db8::/32"]), Some(ip("2001:db9::5"))));
        assert!(!ip_permitted(&list(&["::1"]), Some(ip("127.0.0.1"))), "families do not mix");
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in
            ["", "localhost", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "::1/129", "1.2.3.4/8/8", "1.2.3"]
        {
            assert!(IpRange::parse(bad).is_none(), "{bad}");
            assert!(validate_permitted_ips(vec![bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(validate_permitted_ips(vec!["10.1.0.0/16".into(), "::1".into()]).is_ok());
    }

    #[test]
    fn a_key_is_recognised_by_its_id_and_matched_by_its_digest() {
        let id = new_key_id();
        let cleartext = new_cleartext(&id);
        assert_eq!(key_id_of(cleartext.expose_secret()), Some(id.as_str()));
        assert!(!cleartext.expose_secret().contains(':'));
        assert_eq!(key_id_of("idv_abc.def"), None);
        assert_eq!(key_id_of(&format!("{id}.")), None);
        let key = AccessKey {
            id: id.clone(),
            project_id: ProjectId::generate(),
            name: "n".into(),
            description: String::new(),
            role_names: vec![],
            key_tenants: vec![],
            active: true,
            expire_time: 0,
            created_by: String::new(),
            bound_user_id: String::new(),
            custom_claims: Map::new(),
            custom_attributes: Map::new(),
            permitted_ips: vec![],
            secret_hash: hash_secret(cleartext.expose_secret()),
            created_ms: 0,
            updated_ms: 0,
        };
        assert!(secret_matches(&key, cleartext.expose_secret()));
        assert!(!secret_matches(&key, &format!("{id}.wrong")));
        assert!(!format!("{key:?}").contains(&cleartext.expose_secret()[KEY_ID_LEN + 1..]));
        assert!(!key.expired(i64::MAX));
        let expiring = AccessKey { expire_time: 100, ..key };
        assert!(!expiring.expired(99_999));
        assert!(expiring.expired(100_000));
    }

    #[test]
    fn reserved_claims_cannot_be_set() {
        for name in ["sub", "roles", "tenants", "exp", "dct"] {
            let claims = json!({ name: "x" }).as_object().cloned().unwrap_or_default();
            assert!(validate_custom_claims("customClaims", claims).is_err(), "{name}");
        }
        let ok = json!({"team": "ops"}).as_object().cloned().unwrap_or_default();
        assert!(validate_custom_claims("customClaims", ok).is_ok());
    }
}
