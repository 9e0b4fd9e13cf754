//! Projects and their management keys.
//!
//! A management key is shown to its owner once, as `idv_<keyId>.<secret>`, and stored only as
//! the SHA-256 of that whole string. SHA-256 (not a password hash) is right here: the secret is
//! 256 random bits, so there is nothing to brute-force, and the check runs on every request.
//! The key id lets the store find the record without comparing secrets; the digest comparison is
//! constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{actions, Actor, Audit, AuditRecord};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::store::SharedStore;

const KEY_PREFIX: &str = "idv_";
/// Length of a management key id (alphanumeric).
pub const KEY_ID_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub created_ms: i64,
}

/// A stored management key: everything but the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementKey {
    pub key_id: String,
    pub project_id: ProjectId,
    pub name: String,
    /// SHA-256 of the full key string.
    pub key_hash: [u8; 32],
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not the secret, but there is no reason to print it either.
        f.debug_struct("ManagementKey")
            .field("key_id", &self.key_id)
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("revoked_ms", &self.revoked_ms)
            .finish_non_exhaustive()
    }
}

/// Whether a key can be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl ManagementKey {
    pub fn state(&self, now_ms: i64) -> KeyState {
        if self.revoked_ms.is_some() {
            KeyState::Revoked
        } else if self.expires_ms.is_some_and(|e| e <= now_ms) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

/// A freshly made key: the record to store and the secret to show once.
pub struct IssuedKey {
    pub record: ManagementKey,
    pub secret: SecretString,
}

pub fn hash_key(full_key: &str) -> [u8; 32] {
    Sha256::digest(full_key.as_bytes()).into()
}

/// Makes a new random management key for `project_id`.
pub fn issue_key(project_id: &ProjectId, name: &str, now_ms: i64, expires_ms: Option<i64>) -> IssuedKey {
    let key_id: String =
        rand::thread_rng().sample_iter(&Alphanumeric).take(KEY_ID_LEN).map(char::from).collect();
    let mut secret_bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(secret_bytes.as_mut());
    let full =
        SecretString::from(format!("{KEY_PREFIX}{key_id}.{}", URL_SAFE_NO_PAD.encode(secret_bytes.as_ref())));
    let record = ManagementKey {
        key_id,
        project_id: project_id.clone(),
        name: name.to_owned(),
        key_hash: hash_key(full.expose_secret()),
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
    };
    IssuedKey { record, secret: full }
}

/// Extracts the key id from a presented key without judging the secret part.
pub fn key_id_of(full_key: &str) -> Option<&str> {
    let rest = full_key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('.')?;
    let well_formed =
        id.len() == KEY_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric()) && !secret.is_empty();
    well_formed.then_some(id)
}

/// Constant-time check of a presented key against its stored record.
pub fn key_matches(record: &ManagementKey, presented: &str) -> bool {
    bool::from(hash_key(presented).ct_eq(&record.key_hash))
}

/// Splits `Bearer <projectId>:<managementKey>` (Descope's management authorization) into its
/// parts. Anything else is refused without echoing what was sent.
pub fn parse_bearer(header: &str) -> Result<(ProjectId, &str)> {
    const REFUSED: Error =
        Error::Unauthorized("management authorization must be 'Bearer <projectId>:<managementKey>'");
    let token =
        header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(REFUSED)?.trim();
    // A session-token form (projectId:jwt:key) ends with the key, so take the last segment.
    let (project, rest) = token.split_once(':').ok_or(REFUSED)?;
    let key = rest.rsplit(':').next().unwrap_or(rest);
    let project = ProjectId::parse(project).map_err(|_| REFUSED)?;
    if key.is_empty() {
        return Err(REFUSED);
    }
    Ok((project, key))
}

/// Validates a human-given project or key name.
pub fn validate_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

/// How long a management-key record is trusted from memory. Revocation through this server
/// (API or CLI in this process) applies at once; on PostgreSQL, other replicas evict on the
/// revocation's notification ([`KeyCache::evict`]); this bound remains for a notification that is
/// lost on a connection that has not yet been seen to fail, and for the CLI revoking a key of a
/// running SQLite server (another process).
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Most key records kept in memory.
const KEY_CACHE_MAX: usize = 10_000;

/// The in-memory copy of management-key records, with what lets other processes' revocations
/// reach it: eviction by key id, and a switch that stops trusting it (while the notification
/// channel of a shared database is down, every check reads the store).
#[derive(Default)]
pub struct KeyCache {
    records: std::sync::RwLock<std::collections::HashMap<String, (std::time::Instant, ManagementKey)>>,
    /// Bumped by every eviction: a record read from the store before an eviction is not cached
    /// after it (it may predate the revocation that caused the eviction).
    evictions: std::sync::atomic::AtomicU64,
    /// While set, the cache is bypassed.
    untrusted: std::sync::atomic::AtomicBool,
}

impl KeyCache {
    /// Forgets one key (it was revoked, here or elsewhere).
    pub fn evict(&self, key_id: &str) {
        use std::sync::atomic::Ordering;
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        self.evictions.fetch_add(1, Ordering::SeqCst);
        records.remove(key_id);
    }

    /// Forgets every key (revocations may have been missed).
    pub fn evict_all(&self) {
        use std::sync::atomic::Ordering;
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        self.evictions.fetch_add(1, Ordering::SeqCst);
        records.clear();
    }

    /// Whether records may be served from memory: false while revocations by other processes
    /// could go unnoticed (the notification channel is down).
    pub fn set_trusted(&self, trusted: bool) {
        use std::sync::atomic::Ordering;
        if !trusted {
            self.untrusted.store(true, Ordering::SeqCst);
            self.evict_all();
        } else {
            self.evict_all();
            self.untrusted.store(false, Ordering::SeqCst);
        }
    }

    fn get(&self, key_id: &str) -> Option<ManagementKey> {
        use std::sync::atomic::Ordering;
        if self.untrusted.load(Ordering::Relaxed) {
            return None;
        }
        let records = self.records.read().unwrap_or_else(|p| p.into_inner());
        records.get(key_id).filter(|(at, _)| at.elapsed() < KEY_CACHE_TTL).map(|(_, r)| r.clone())
    }

    fn generation(&self) -> u64 {
        self.evictions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches a record read from the store when no eviction happened since `generation`.
    fn put(&self, generation: u64, record: &ManagementKey) {
        use std::sync::atomic::Ordering;
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        if self.evictions.load(Ordering::SeqCst) != generation || self.untrusted.load(Ordering::SeqCst) {
            return;
        }
        if records.len() >= KEY_CACHE_MAX {
            records.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
            if records.len() >= KEY_CACHE_MAX {
                return;
            }
        }
        records.insert(record.key_id.clone(), (std::time::Instant::now(), record.clone()));
    }
}

/// The management key a request authenticated with (the actor of its audit records): its id
/// and name, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: String,
    pub name: String,
}

/// A change of a key's name or expiry; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    /// `Some(None)`: never expires; `Some(Some(ms))`: expires then (Unix ms).
    pub expires_ms: Option<Option<i64>>,
}

/// Projects, keys, and the management-key check every request goes through.
#[derive(Clone)]
pub struct ProjectService {
    store: SharedStore,
    clock: SharedClock,
    /// Key records by key id: the key check runs on every request, and a store read per request
    /// costs more than the rest of the check.
    keys: std::sync::Arc<KeyCache>,
    audit: Audit,
}

impl ProjectService {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        let audit = Audit::disabled(clock.clone());
        Self { store, clock, keys: Default::default(), audit }
    }

    /// Records failed key checks and key changes in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Now, by the service's clock (Unix milliseconds).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The key cache, for the listener of another process's revocations.
    pub fn key_cache(&self) -> std::sync::Arc<KeyCache> {
        self.keys.clone()
    }

    async fn key_record(&self, key_id: &str) -> Result<Option<ManagementKey>> {
        if let Some(record) = self.keys.get(key_id) {
            return Ok(Some(record));
        }
        let generation = self.keys.generation();
        let record = self.store.get_key(key_id).await?;
        // Only existing keys are cached, so that garbage key ids cannot grow the map.
        if let Some(r) = &record {
            self.keys.put(generation, r);
        }
        Ok(record)
    }

    pub async fn create_project(&self, name: &str) -> Result<Project> {
        let project = Project {
            id: ProjectId::generate(),
            name: validate_name("name", name)?,
            created_ms: self.clock.now_ms(),
        };
        self.store.create_project(&project).await?;
        Ok(project)
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        self.store.list_projects().await
    }

    /// Makes a key for an existing project; `expires_in_ms` counts from now.
    pub async fn create_key(
        &self,
        project: &ProjectId,
        name: &str,
        expires_in_ms: Option<i64>,
    ) -> Result<IssuedKey> {
        if self.store.get_project(project).await?.is_none() {
            return Err(Error::ProjectNotFound(project.to_string()));
        }
        if expires_in_ms.is_some_and(|d| d <= 0) {
            return Err(Error::invalid("expireTime", "must be in the future"));
        }
        let now = self.clock.now_ms();
        let issued = issue_key(
            project,
            &validate_name("name", name)?,
            now,
            expires_in_ms.map(|d| now.saturating_add(d)),
        );
        self.store.insert_key(&issued.record).await?;
        self.audit.record(
            AuditRecord::new(project, actions::MANAGEMENT_KEY_CREATED)
                .data("keyId", issued.record.key_id.as_str())
                .data("keyName", issued.record.name.as_str()),
        );
        Ok(issued)
    }

    /// Expires a key of `project` now: refused from the next request on, but (unlike a revoked
    /// key) its expiry can be moved again with [`Self::update_key`].
    pub async fn expire_key(&self, project: &ProjectId, key_id: &str) -> Result<ManagementKey> {
        let now = self.clock.now_ms();
        self.update_key(project, key_id, KeyUpdate { name: None, expires_ms: Some(Some(now)) }).await
    }

    /// Renames a key of `project` or changes its expiry (an expiry in the past expires it now).
    /// A revoked key cannot be changed.
    pub async fn update_key(
        &self,
        project: &ProjectId,
        key_id: &str,
        update: KeyUpdate,
    ) -> Result<ManagementKey> {
        let mut key = self
            .store
            .list_keys(project)
            .await?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        if key.revoked_ms.is_some() {
            return Err(Error::invalid("keyId", "the key is revoked"));
        }
        if let Some(name) = &update.name {
            key.name = validate_name("name", name)?;
        }
        if let Some(expires_ms) = update.expires_ms {
            key.expires_ms = expires_ms;
        }
        if !self.store.update_key(project, key_id, &key.name, key.expires_ms).await? {
            return Err(Error::KeyNotFound(key_id.to_owned()));
        }
        // As for a revocation: the next check on this server sees the new expiry.
        self.keys.evict(key_id);
        let mut record = AuditRecord::new(project, actions::MANAGEMENT_KEY_UPDATED)
            .data("keyId", key_id)
            .data("keyName", key.name.as_str());
        if let Some(expires_ms) = update.expires_ms {
            record = record.data("expireTime", expires_ms.map_or(0, |ms| ms.div_euclid(1000)));
        }
        self.audit.record(record);
        Ok(key)
    }

    pub async fn list_keys(&self, project: &ProjectId) -> Result<Vec<ManagementKey>> {
        if self.store.get_project(project).await?.is_none() {
            return Err(Error::ProjectNotFound(project.to_string()));
        }
        self.store.list_keys(project).await
    }

    /// Revokes a key of `project`. The cached record is evicted after the store has the
    /// revocation, and a check that read the record before it cannot cache it afterwards, so the
    /// very next check on this server refuses the key.
    pub async fn revoke_key(&self, project: &ProjectId, key_id: &str) -> Result<()> {
        // Only an id of the shape this server issues can name a key; anything else (a megabyte of
        // text...) is not found without a look-up, and not repeated in the error.
        if key_id.len() != KEY_ID_LEN || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::KeyNotFound(format!("not a key id ({KEY_ID_LEN} letters and digits)")));
        }
        let revoked = self.store.revoke_key(project, key_id, self.clock.now_ms()).await;
        self.keys.evict(key_id);
        if revoked? {
            self.audit
                .record(AuditRecord::new(project, actions::MANAGEMENT_KEY_REVOKED).data("keyId", key_id));
            Ok(())
        } else {
            Err(Error::KeyNotFound(key_id.to_owned()))
        }
    }

    /// Checks an `Authorization` header and answers the project and key it grants; the key
    /// becomes the actor of the request's audit records. Every refusal is the same kind of error
    /// and never repeats what was presented; one whose project id is well-formed is audited.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<(ProjectId, KeyIdentity)> {
        let header = authorization.ok_or(Error::Unauthorized("missing management authorization"))?;
        let (project, presented) = parse_bearer(header)?;
        let Some(key_id) = key_id_of(presented) else {
            self.audit_failure(&project, None, "malformed key");
            return Err(Error::WrongManagementKey);
        };
        let Some(record) = self.key_record(key_id).await? else {
            self.audit_failure(&project, None, "unknown key");
            return Err(Error::WrongManagementKey);
        };
        // Compare the digest first, in constant time, so that timing says nothing about which
        // check failed.
        let matches = key_matches(&record, presented);
        if !matches || record.project_id != project {
            // The key id is named only when the key is the project's own (a wrong secret): it is
            // no secret, and another project's key ids are none of this project's business.
            let own = (record.project_id == project).then_some(key_id);
            self.audit_failure(&project, own, "wrong key");
            return Err(Error::WrongManagementKey);
        }
        match record.state(self.clock.now_ms()) {
            KeyState::Active => {
                crate::audit::set_actor(Actor::ManagementKey {
                    id: record.key_id.clone(),
                    name: record.name.clone(),
                });
                Ok((project, KeyIdentity { key_id: record.key_id, name: record.name }))
            }
            KeyState::Expired => {
                self.audit_failure(&project, Some(key_id), "expired key");
                Err(Error::Unauthorized("management key has expired"))
            }
            KeyState::Revoked => {
                self.audit_failure(&project, Some(key_id), "revoked key");
                Err(Error::Unauthorized("management key has been revoked"))
            }
        }
    }

    fn audit_failure(&self, project: &ProjectId, key_id: Option<&str>, reason: &str) {
        let mut record = AuditRecord::new(project, actions::MANAGEMENT_KEY_CHECK_FAILED)
            .kind("warn")
            .data("reason", reason);
        if let Some(key_id) = key_id {
            record = record.data("keyId", key_id);
        }
        self.audit.record(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_key_verifies_and_a_changed_one_does_not() {
        let pid = ProjectId::generate();
        let issued = issue_key(&pid, "ci", 0, None);
        let full = issued.secret.expose_secret().to_owned();
        assert_eq!(key_id_of(&full), Some(issued.record.key_id.as_str()));
        assert!(key_matches(&issued.record, &full));
        let mut tampered = full.clone();
        tampered.pop();
        tampered.push(if full.ends_with('A') { 'B' } else { 'A' });
        assert!(!key_matches(&issued.record, &tampered));
        // 32 random bytes => 43 base64url characters after the dot.
        assert_eq!(full.split_once('.').map(|(_, s)| s.len()), Some(43));
    }

    #[test]
    fn key_state_follows_expiry_and_revocation() {
        let pid = ProjectId::generate();
        let mut k = issue_key(&pid, "k", 0, Some(1000)).record;
        assert_eq!(k.state(999), KeyState::Active);
        assert_eq!(k.state(1000), KeyState::Expired);
        k.revoked_ms = Some(5);
        assert_eq!(k.state(0), KeyState::Revoked);
    }

    #[test]
    fn bearer_parsing() {
        let (p, k) = parse_bearer("Bearer P123:idv_abc.def").unwrap();
        assert_eq!(p.as_str(), "P123");
        assert_eq!(k, "idv_abc.def");
        assert!(parse_bearer("Basic xyz").is_err());
        assert!(parse_bearer("Bearer P123").is_err());
        assert!(parse_bearer("Bearer P123:").is_err());
        assert!(key_id_of("nope").is_none());
        assert!(key_id_of("idv_short.x").is_none());
    }

    #[test]
    fn debug_output_hides_the_hash() {
        let k = issue_key(&ProjectId::generate(), "k", 0, None);
        let dbg = format!("{:?}", k.record);
        assert!(!dbg.contains("key_hash"));
    }
}
