//! Batch uploads (`.../oauthtoken/batch/upload`): a migration in one call. All or nothing, as the
//! SDKs document: every item is validated first, and a batch with any failing item writes nothing
//! and answers the failures; a clean batch is sealed (in parallel, on blocking threads) and
//! written in one store transaction.
//!
//! Owners are checked in bulk (one store query for all users, one tenant list), never one query
//! per item.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::{check_uploaded_token, parse_app_id, text, OutboundService, UploadedToken};
use crate::error::{bounded_echo, Error, Result};
use crate::ids::{generate_token_id, ProjectId, UserId};
use crate::limits::{MAX_BATCH_TOKENS, MAX_OUTBOUND_TEXT_LEN, MAX_TOKENS_PER_OWNER};
use crate::outbound::{SealedOutboundToken, TokenOwner};
use crate::provider::ProviderConfig;
use crate::secrets::{outbound_token_aad, Sealer, TokenField};

/// One token of a batch, as the wire gives it (absent fields empty).
#[derive(Debug, Default)]
pub struct BatchToken {
    pub app_id: String,
    /// User batches: the owner. Tenant batches: unused.
    pub user_id: String,
    /// Tenant batches: the owner. User batches: the tenant the token is for ("" for none).
    pub tenant_id: String,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds; 0 for unknown.
    pub expiration: i64,
    pub access_token_type: String,
    pub scopes: Vec<String>,
    pub external_identifier: String,
    pub granted_by: String,
}

/// Why one item of a batch was refused, named by its app and owner as the SDKs expect.
#[derive(Debug)]
pub struct BatchFailure {
    pub app_id: String,
    /// Empty on tenant batches.
    pub user_id: String,
    /// The tenant owner (tenant batches) or the user token's tenant.
    pub tenant_id: String,
    pub error: Error,
}

/// Whose tokens a batch uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    User,
    Tenant,
}

/// A validated item: everything but the sealing done.
pub(crate) struct Checked {
    pub(crate) token: SealedOutboundToken,
    access: Option<SecretString>,
    refresh: Option<SecretString>,
}

/// An item's id as a failure repeats it: no valid id is longer than [`MAX_OUTBOUND_TEXT_LEN`]
/// bytes, so a longer one (refused for that) is cut there rather than sent back whole.
fn echoed(id: String) -> String {
    bounded_echo(id, MAX_OUTBOUND_TEXT_LEN)
}

impl OutboundService {
    /// Validates every item, then (if none failed) seals and stores them all in one transaction.
    /// Answers the failures: empty when everything was written, otherwise nothing was. Errors
    /// that concern the whole request (too many items, storage) are an `Err`.
    pub async fn batch_upload(
        &self,
        project: &ProjectId,
        kind: BatchKind,
        items: Vec<BatchToken>,
    ) -> Result<Vec<BatchFailure>> {
        if items.len() > MAX_BATCH_TOKENS {
            return Err(Error::invalid("tokens", format!("at most {MAX_BATCH_TOKENS} tokens per batch")));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let apps: HashMap<String, ProviderConfig> = self
            .store
            .list_providers(project)
            .await?
            .into_iter()
            .map(|app| (app.name.to_string(), app))
            .collect();
        let tenants: HashSet<String> =
            self.store.list_tenants(project).await?.into_iter().map(|t| t.id).collect();
        let users: HashSet<String> = if kind == BatchKind::User {
            let mut ids: Vec<String> = items.iter().map(|i| i.user_id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            self.store.existing_user_ids(project, &ids).await?
        } else {
            HashSet::new()
        };

        let started = std::time::Instant::now();
        let now = self.clock.now_ms();
        let mut failures = Vec::new();
        // Two items of the same slot (app, owner, tenant, scope set): the later one wins, as if
        // they had been uploaded one after the other.
        let mut slots: HashMap<(String, String, String, String), usize> = HashMap::new();
        let mut checked: Vec<Checked> = Vec::with_capacity(items.len());
        for item in items {
            let (app_id, user_id, tenant_id) =
                (item.app_id.clone(), item.user_id.clone(), item.tenant_id.clone());
            match check(kind, item, &apps, &tenants, |u| users.contains(u), now) {
                Ok(c) => {
                    let t = &c.token;
                    let key =
                        (t.app_id.to_string(), t.owner.id().to_owned(), t.tenant_id.clone(), t.scope_key());
                    match slots.get(&key) {
                        Some(&at) => checked[at] = c,
                        None => {
                            slots.insert(key, checked.len());
                            checked.push(c);
                        }
                    }
                }
                Err(error) => failures.push(BatchFailure {
                    app_id: echoed(app_id),
                    user_id: if kind == BatchKind::User { echoed(user_id) } else { String::new() },
                    tenant_id: echoed(tenant_id),
                    error,
                }),
            }
        }
        if !failures.is_empty() {
            return Ok(failures);
        }

        let checked_at = started.elapsed();
        let count = checked.len();
        let tokens = self.seal_all(project, checked).await?;
        let sealed_at = started.elapsed();
        let audited: Vec<_> =
            tokens.iter().map(|t| (t.app_id.clone(), t.owner.clone(), t.tenant_id.clone())).collect();
        let overfull = self.store.put_outbound_tokens(project, tokens, MAX_TOKENS_PER_OWNER).await?;
        if overfull.is_empty() {
            // A replaced token keeps its stored id: the record names the owner and app, which
            // identify it as well.
            for (app, owner, tenant) in &audited {
                self.users.audit().record(
                    super::token_record(
                        project,
                        crate::audit::actions::OUTBOUND_TOKEN_UPLOADED,
                        app.as_str(),
                        owner,
                        tenant,
                    )
                    .data("via", "batch"),
                );
            }
        }
        // One line per batch (never per token): where a migration's time goes.
        tracing::info!(
            %project,
            tokens = count,
            written = overfull.is_empty(),
            check_ms = checked_at.as_millis() as u64,
            seal_ms = (sealed_at - checked_at).as_millis() as u64,
            store_ms = (started.elapsed() - sealed_at).as_millis() as u64,
            "outbound batch upload"
        );
        Ok(overfull
            .into_iter()
            .map(|slot| BatchFailure {
                app_id: slot.app_id.to_string(),
                user_id: match &slot.owner {
                    TokenOwner::User(u) => u.to_string(),
                    TokenOwner::Tenant(_) => String::new(),
                },
                tenant_id: match &slot.owner {
                    TokenOwner::User(_) => slot.tenant_id.clone(),
                    TokenOwner::Tenant(t) => t.clone(),
                },
                error: Error::invalid(
                    "scopes",
                    format!(
                        "an owner holds at most {MAX_TOKENS_PER_OWNER} tokens (scope sets) per app and tenant"
                    ),
                ),
            })
            .collect())
    }

    /// Seals every token's secrets. With a blocking sealer (the envelope cipher), the work is
    /// split over one blocking task per core; AEAD is CPU-bound and must not stall the executor.
    async fn seal_all(&self, project: &ProjectId, checked: Vec<Checked>) -> Result<Vec<SealedOutboundToken>> {
        let Some(sealer) = self.cipher.sealer(project).await? else {
            let mut out = Vec::with_capacity(checked.len());
            for c in checked {
                let mut t = c.token;
                if let Some(a) = &c.access {
                    t.access_token = Some(self.seal(project, &t, TokenField::Access, a).await?);
                }
                if let Some(r) = &c.refresh {
                    t.refresh_token = Some(self.seal(project, &t, TokenField::Refresh, r).await?);
                }
                out.push(t);
            }
            return Ok(out);
        };
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = checked.len().div_ceil(workers).max(1);
        let mut chunks: Vec<Vec<Checked>> = Vec::with_capacity(workers);
        let mut rest = checked;
        while rest.len() > chunk {
            let tail = rest.split_off(chunk);
            chunks.push(rest);
            rest = tail;
        }
        chunks.push(rest);
        let project = Arc::new(project.clone());
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|part| {
                let (sealer, project) = (sealer.clone(), project.clone());
                tokio::task::spawn_blocking(move || seal_chunk(sealer.as_ref(), &project, part))
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            let sealed = task.await.map_err(|e| Error::Internal(format!("sealing task failed: {e}")))??;
            out.extend(sealed);
        }
        Ok(out)
    }
}

fn seal_chunk(
    sealer: &dyn Sealer,
    project: &ProjectId,
    part: Vec<Checked>,
) -> Result<Vec<SealedOutboundToken>> {
    part.into_iter().map(|c| seal_checked(sealer, project, c)).collect()
}

/// Seals a checked token's secrets under the outbound-token associated data.
pub(crate) fn seal_checked(
    sealer: &dyn Sealer,
    project: &ProjectId,
    c: Checked,
) -> Result<SealedOutboundToken> {
    let mut t = c.token;
    let aad =
        |field| outbound_token_aad(project, &t.app_id, t.owner.kind(), t.owner.id(), &t.tenant_id, field);
    let access = match &c.access {
        Some(a) => Some(sealer.seal(a.expose_secret().as_bytes(), &aad(TokenField::Access))?),
        None => None,
    };
    let refresh = match &c.refresh {
        Some(r) => Some(sealer.seal(r.expose_secret().as_bytes(), &aad(TokenField::Refresh))?),
        None => None,
    };
    t.access_token = access;
    t.refresh_token = refresh;
    Ok(t)
}

/// The per-item rules of an upload (those of `upload_token`, without `verifyRefresh`, which
/// batches do not support), against the project's apps, tenants and the known users (the batch's
/// existing users; for a bulk import of users, the user the token comes with).
pub(crate) fn check(
    kind: BatchKind,
    item: BatchToken,
    apps: &HashMap<String, ProviderConfig>,
    tenants: &HashSet<String>,
    user_known: impl Fn(&str) -> bool,
    now_ms: i64,
) -> Result<Checked> {
    let app_id = parse_app_id(&item.app_id)?;
    let Some(app) = apps.get(app_id.as_str()) else {
        return Err(Error::OutboundAppNotFound(app_id.to_string()));
    };
    let UploadedToken { access, refresh, scopes } = check_uploaded_token(
        app,
        item.access_token,
        item.refresh_token,
        item.expiration,
        item.scopes,
        [&item.access_token_type, &item.external_identifier, &item.granted_by],
    )?;
    text("tenantId", &item.tenant_id, MAX_OUTBOUND_TEXT_LEN)?;
    let tenant_known = tenants.contains(&item.tenant_id);
    let (owner, tenant_id) = match kind {
        BatchKind::User => {
            let user = UserId::parse(&item.user_id)?;
            if !user_known(user.as_str()) {
                return Err(Error::UserNotFound);
            }
            if !item.tenant_id.is_empty() && !tenant_known {
                return Err(Error::NotFound(format!("tenant '{}'", item.tenant_id)));
            }
            (TokenOwner::User(user), item.tenant_id)
        }
        BatchKind::Tenant => {
            if item.tenant_id.is_empty() {
                return Err(Error::MissingArgument("tenantId"));
            }
            if !tenant_known {
                return Err(Error::NotFound(format!("tenant '{}'", item.tenant_id)));
            }
            (TokenOwner::Tenant(item.tenant_id), String::new())
        }
    };
    let access_token_type =
        if item.access_token_type.is_empty() { "Bearer".to_owned() } else { item.access_token_type };
    Ok(Checked {
        token: SealedOutboundToken {
            id: generate_token_id(),
            app_id,
            owner,
            tenant_id,
            scopes,
            access_token: None,
            refresh_token: None,
            access_token_type,
            expiration: item.expiration,
            granted_by: item.granted_by,
            external_identifier: item.external_identifier,
            token_sub: String::new(),
            last_refresh_ms: 0,
            last_refresh_error: String::new(),
            created_ms: now_ms,
            updated_ms: now_ms,
            version: 1,
            reauth_required: false,
        },
        access,
        refresh,
    })
}
