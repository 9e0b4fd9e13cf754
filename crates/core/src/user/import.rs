//! Bulk import of users with their tokens: `idvault import --users FILE.jsonl` and
//! `idvault-bench seed` both come here.
//!
//! Two passes over the source, so that a bad line writes nothing and memory stays bounded by a
//! batch whatever the size of the file:
//! 1. **check**: every line is parsed and put through the rules of a create
//!    ([`NewUser::into_user`]), of a token `PUT` (`validate_request`) and of an outbound token
//!    upload (the batch upload's per-item check), against the project's directory (tenants,
//!    roles, attribute definitions: read once, checked with
//!    [`check_references`](crate::directory::references::check_references)); login ids and user
//!    ids must be unique within the file and not taken in the project. Any failure: the lines'
//!    errors are answered and nothing is written.
//! 2. **write**: the source is read again; each batch is converted and its tokens sealed in
//!    parallel on every core (with the project's [`Sealer`], under the same associated data as
//!    the server's), then handed to [`ImportStore::import_users`] (one transaction per batch)
//!    while the next batch is prepared.
//!
//! A failure during the write (a full disk, a login id created meanwhile by a running server)
//! stops the import: the batches already committed stay, the others are not written, and the
//! error says how many users were written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::directory::references::{check_references, DirectoryFacts};
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::limits::MAX_TOKENS_PER_OWNER;
use crate::outbound::service::{check_batch_token, seal_checked, CheckedToken};
use crate::outbound::{BatchKind, BatchToken};
use crate::provider::ProviderConfig;
use crate::secrets::{Cipher, Sealer};
use crate::store::{ImportedUser, SharedStore};
use crate::user::model::{NewUser, User};
use crate::vault::service::{validate_request, VaultService};
use crate::vault::StoreTokenRequest;

/// One user to import, as parsed from a line.
#[derive(Debug, Default)]
pub struct ImportUser {
    /// Kept when given (a migration keeps its ids); generated otherwise.
    pub user_id: Option<String>,
    pub user: NewUser,
    /// Provider tokens, as `PUT /v1/mgmt/user/provider/token` stores them. Two of one provider:
    /// the later one is stored.
    pub tokens: Vec<StoreTokenRequest>,
    /// Outbound app tokens of this user, as the user batch upload takes them (`user_id` is
    /// ignored: the owner is this user). Two of one slot (app, tenant, scope set): the later one.
    pub outbound_tokens: Vec<BatchToken>,
}

/// Where the users come from. Read twice (see the module documentation): [`Self::rewind`]
/// starts again from the first user.
pub trait ImportSource: Send + Sync {
    /// A user before parsing (a line of text, an index...). Parsed on worker threads.
    type Item: Send;
    fn rewind(&mut self) -> Result<()>;
    /// The next items, at most `max`, each with its line number (1-based); empty at the end.
    fn next_batch(&mut self, max: usize) -> Result<Vec<(u64, Self::Item)>>;
    /// The user an item describes, or why it cannot be read (a Descope-style error).
    fn parse(&self, item: Self::Item) -> Result<ImportUser>;
}

/// Why a line was refused.
#[derive(Debug)]
pub struct LineError {
    pub line: u64,
    pub error: Error,
}

/// Where an import is, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Checking every line; `done` lines so far.
    Check,
    /// Writing; `done` users committed so far.
    Write,
}

/// Tuning of an import.
#[derive(Debug, Clone, Copy)]
pub struct ImportSettings {
    /// Users per store transaction.
    pub batch_users: usize,
    /// Threads parsing and sealing (default: every core).
    pub threads: usize,
    /// Stop checking after this many bad lines (they are all reported).
    pub max_errors: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            batch_users: 20_000,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_errors: 100,
        }
    }
}

/// What an import did, and where its time went.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub users: u64,
    pub tokens: u64,
    pub outbound_tokens: u64,
    /// The check pass.
    pub check_time: Duration,
    /// Parsing, converting and sealing in the write pass (on every core, overlapping the store).
    pub prepare_time: Duration,
    /// Waiting for the store (the part of the write pass not overlapped by preparation).
    pub store_wait_time: Duration,
    pub write_time: Duration,
}

/// The answer of an import: written, or refused with the bad lines (nothing written).
#[derive(Debug)]
pub enum ImportOutcome {
    Imported(ImportReport),
    Refused { errors: Vec<LineError>, lines_checked: u64 },
}

#[derive(Clone)]
pub struct ImportService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    clock: SharedClock,
}

/// The project's directory and apps, read once per import.
struct Context {
    facts: DirectoryFacts,
    apps: HashMap<String, ProviderConfig>,
    tenants: HashSet<String>,
}

impl ImportService {
    pub fn new(store: SharedStore, cipher: Arc<dyn Cipher>, clock: SharedClock) -> Self {
        Self { store, cipher, clock }
    }

    /// Checks every user of `source`, then (if none failed) writes them all. `progress` is called
    /// after each batch.
    pub async fn import<S: ImportSource>(
        &self,
        project: &ProjectId,
        source: &mut S,
        settings: ImportSettings,
        progress: &(dyn Fn(ImportPhase, u64) + Sync),
    ) -> Result<ImportOutcome> {
        let settings = ImportSettings {
            batch_users: settings.batch_users.max(1),
            threads: settings.threads.max(1),
            max_errors: settings.max_errors.max(1),
        };
        let ctx = self.context(project).await?;
        let started = Instant::now();
        let (errors, lines_checked) = self.check_all(project, source, &ctx, settings, progress).await?;
        if !errors.is_empty() {
            return Ok(ImportOutcome::Refused { errors, lines_checked });
        }
        let check_time = started.elapsed();
        let mut report = self.write_all(project, source, &ctx, settings, progress).await?;
        report.check_time = check_time;
        Ok(ImportOutcome::Imported(report))
    }

    async fn context(&self, project: &ProjectId) -> Result<Context> {
        let tenants = self.store.list_tenants(project).await?;
        let roles = self.store.list_roles(project).await?;
        let defs = self.store.list_attribute_defs(project).await?;
        let apps = self.store.list_providers(project).await?;
        Ok(Context {
            facts: DirectoryFacts::of_directory(&tenants, &roles, defs),
            apps: apps.into_iter().map(|a| (a.name.to_string(), a)).collect(),
            tenants: tenants.into_iter().map(|t| t.id).collect(),
        })
    }

    async fn check_all<S: ImportSource>(
        &self,
        project: &ProjectId,
        source: &mut S,
        ctx: &Context,
        settings: ImportSettings,
        progress: &(dyn Fn(ImportPhase, u64) + Sync),
    ) -> Result<(Vec<LineError>, u64)> {
        source.rewind()?;
        let now = self.clock.now_ms();
        let mut errors: Vec<LineError> = Vec::new();
        let mut seen_login_ids: HashSet<String> = HashSet::new();
        let mut seen_user_ids: HashSet<String> = HashSet::new();
        let mut lines = 0u64;
        loop {
            let items = source.next_batch(settings.batch_users)?;
            if items.is_empty() {
                break;
            }
            lines += items.len() as u64;
            let src: &S = source;
            let checked = par_map(items, settings.threads, |(line, item)| {
                let result = src.parse(item).and_then(|u| {
                    let user_id = match &u.user_id {
                        Some(id) => UserId::parse(id)?,
                        None => UserId::generate(),
                    };
                    prepare(u, user_id, ctx, now).map(|p| (p.user, p.user_id_given))
                });
                (line, result)
            });
            // Uniqueness within the file, in line order; then against the project, in one store
            // read for the batch.
            let mut batch_user_ids = Vec::new();
            let mut batch_login_ids = Vec::new();
            let mut owners: HashMap<String, u64> = HashMap::new();
            for (line, result) in checked {
                let (user, given) = match result {
                    Ok(ok) => ok,
                    Err(error) => {
                        errors.push(LineError { line, error });
                        continue;
                    }
                };
                if let Some(dup) = user.login_ids.iter().find(|l| seen_login_ids.contains(*l)) {
                    errors.push(LineError { line, error: Error::UserAlreadyExists(dup.clone()) });
                    continue;
                }
                if given && !seen_user_ids.insert(user.user_id.to_string()) {
                    errors.push(LineError {
                        line,
                        error: Error::UserAlreadyExists(format!("user id {}", user.user_id)),
                    });
                    continue;
                }
                for l in &user.login_ids {
                    seen_login_ids.insert(l.clone());
                    owners.insert(l.clone(), line);
                    batch_login_ids.push(l.clone());
                }
                if given {
                    owners.insert(user.user_id.to_string(), line);
                    batch_user_ids.push(user.user_id.to_string());
                }
            }
            let taken = self.store.taken_user_keys(project, &batch_user_ids, &batch_login_ids).await?;
            let mut conflicts: Vec<LineError> = taken
                .login_ids
                .into_iter()
                .map(|l| LineError {
                    line: owners.get(&l).copied().unwrap_or(0),
                    error: Error::UserAlreadyExists(l),
                })
                .chain(taken.user_ids.into_iter().map(|id| LineError {
                    line: owners.get(&id).copied().unwrap_or(0),
                    error: Error::UserAlreadyExists(format!("user id {id}")),
                }))
                .collect();
            conflicts.sort_by_key(|e| e.line);
            errors.extend(conflicts);
            progress(ImportPhase::Check, lines);
            if errors.len() >= settings.max_errors {
                break;
            }
        }
        errors.sort_by_key(|e| e.line);
        errors.truncate(settings.max_errors);
        Ok((errors, lines))
    }

    async fn write_all<S: ImportSource>(
        &self,
        project: &ProjectId,
        source: &mut S,
        ctx: &Context,
        settings: ImportSettings,
        progress: &(dyn Fn(ImportPhase, u64) + Sync),
    ) -> Result<ImportReport> {
        let started = Instant::now();
        let sealer = self
            .cipher
            .sealer(project)
            .await?
            .ok_or_else(|| Error::Internal("this cipher cannot seal on worker threads".into()))?;
        source.rewind()?;
        let mut report = ImportReport::default();
        let mut written = 0u64;
        let mut pending: Option<(u64, u64, tokio::task::JoinHandle<Result<()>>)> = None;
        loop {
            let items = source.next_batch(settings.batch_users)?;
            let prepare_started = Instant::now();
            let batch = if items.is_empty() {
                Vec::new()
            } else {
                let now = self.clock.now_ms();
                let src: &S = source;
                let sealer: &dyn Sealer = sealer.as_ref();
                let first_line = items.first().map_or(0, |(l, _)| *l);
                let prepared = par_map(items, settings.threads, |(line, item)| {
                    src.parse(item)
                        .and_then(|u| {
                            let user_id = match &u.user_id {
                                Some(id) => UserId::parse(id)?,
                                None => UserId::generate(),
                            };
                            prepare(u, user_id, ctx, now)?.seal(sealer, project)
                        })
                        .map_err(|e| (line, e))
                });
                let mut batch = Vec::with_capacity(prepared.len());
                for p in prepared {
                    match p {
                        Ok(u) => batch.push(u),
                        // Checked in the first pass: the source changed in between.
                        Err((line, e)) => {
                            if let Some((count, _, handle)) = pending.take() {
                                if matches!(handle.await, Ok(Ok(()))) {
                                    written += count;
                                }
                            }
                            return Err(Error::Internal(format!(
                            "line {line} changed since it was checked ({e}); {written} users were written, \
                                 from line {first_line} on nothing was"
                            )));
                        }
                    }
                }
                batch
            };
            report.prepare_time += prepare_started.elapsed();
            if let Some((count, first_line, handle)) = pending.take() {
                let wait = Instant::now();
                let result =
                    handle.await.map_err(|e| Error::Internal(format!("import write task failed: {e}")))?;
                report.store_wait_time += wait.elapsed();
                if let Err(e) = result {
                    return Err(write_failed(e, written, first_line));
                }
                written += count;
                progress(ImportPhase::Write, written);
            }
            if batch.is_empty() {
                break;
            }
            report.users += batch.len() as u64;
            report.tokens += batch.iter().map(|u| u.tokens.len() as u64).sum::<u64>();
            report.outbound_tokens += batch.iter().map(|u| u.outbound_tokens.len() as u64).sum::<u64>();
            let count = batch.len() as u64;
            let (store, project) = (self.store.clone(), project.clone());
            pending = Some((
                count,
                written + 1,
                tokio::spawn(async move { store.import_users(&project, batch).await }),
            ));
        }
        report.write_time = started.elapsed();
        Ok(report)
    }
}

/// A write that failed after the check: what was written, and where to resume.
fn write_failed(e: Error, written: u64, first_user: u64) -> Error {
    match e {
        Error::Storage(m) => Error::Storage(format!(
            "{m} ({written} users were written; from user {first_user} on, in file order, nothing was)"
        )),
        Error::Internal(m) => Error::Internal(format!(
            "{m} ({written} users were written; from user {first_user} on, in file order, nothing was)"
        )),
        other => {
            tracing::warn!(written, first_user, "import stopped after the check: {other}");
            other
        }
    }
}

/// A user checked against every rule, tokens not yet sealed.
struct Prepared {
    user: User,
    user_id_given: bool,
    tokens: Vec<StoreTokenRequest>,
    outbound: Vec<CheckedToken>,
}

/// Applies the rules of a create, a token `PUT` and an outbound upload to one user.
fn prepare(u: ImportUser, user_id: UserId, ctx: &Context, now_ms: i64) -> Result<Prepared> {
    let user_id_given = u.user_id.is_some();
    let mut user = u.user.into_user(user_id, now_ms)?;
    check_references(&user, &ctx.facts)?;

    // Provider tokens: the later of one provider wins, as two PUTs would.
    let mut tokens: Vec<StoreTokenRequest> = Vec::with_capacity(u.tokens.len());
    for t in u.tokens {
        validate_request(&t)?;
        match tokens.iter().position(|k| k.provider == t.provider) {
            Some(at) => tokens[at] = t,
            None => tokens.push(t),
        }
    }
    for t in &tokens {
        if !user.oauth_providers.iter().any(|p| p == t.provider.as_str()) {
            user.oauth_providers.push(t.provider.to_string());
        }
    }

    // Outbound tokens: the batch upload's per-item rules, owned by this user.
    let owner = user.user_id.to_string();
    let mut outbound: Vec<CheckedToken> = Vec::with_capacity(u.outbound_tokens.len());
    let mut per_app_tenant: HashMap<(String, String), usize> = HashMap::new();
    for mut item in u.outbound_tokens {
        item.user_id = owner.clone();
        let c = check_batch_token(BatchKind::User, item, &ctx.apps, &ctx.tenants, |id| id == owner, now_ms)?;
        let slot =
            |t: &CheckedToken| (t.token.app_id.to_string(), t.token.tenant_id.clone(), t.token.scope_key());
        match outbound.iter().position(|k| slot(k) == slot(&c)) {
            Some(at) => outbound[at] = c,
            None => {
                let n = per_app_tenant
                    .entry((c.token.app_id.to_string(), c.token.tenant_id.clone()))
                    .or_default();
                *n += 1;
                if *n > MAX_TOKENS_PER_OWNER {
                    return Err(Error::invalid(
                        "scopes",
                        format!("an owner holds at most {MAX_TOKENS_PER_OWNER} tokens (scope sets) per app and tenant"),
                    ));
                }
                outbound.push(c);
            }
        }
    }
    // Of one owner's tokens for an app, the later one is the latest (as for uploads one after the
    // other within a millisecond).
    let mut per_app: HashMap<String, i64> = HashMap::new();
    for c in &mut outbound {
        let n = per_app.entry(c.token.app_id.to_string()).or_default();
        c.token.updated_ms = now_ms + *n;
        *n += 1;
    }
    Ok(Prepared { user, user_id_given, tokens, outbound })
}

impl Prepared {
    fn seal(self, sealer: &dyn Sealer, project: &ProjectId) -> Result<ImportedUser> {
        let user_id = &self.user.user_id;
        let now = self.user.created_ms;
        let tokens = self
            .tokens
            .into_iter()
            .map(|t| VaultService::seal_blocking(sealer, project, user_id, t, now))
            .collect::<Result<Vec<_>>>()?;
        let outbound_tokens = self
            .outbound
            .into_iter()
            .map(|c| seal_checked(sealer, project, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(ImportedUser { user: self.user, tokens, outbound_tokens })
    }
}

/// `f` over `items` on `threads` threads, in order.
fn par_map<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() < 2 * threads {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order() {
        let out = par_map((0..1000).collect(), 4, |i: i32| i * 2);
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
    }
}
