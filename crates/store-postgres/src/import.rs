//! The bulk import path: a batch of new users with their tokens in one transaction, each table
//! written by one multi-row `INSERT ... SELECT FROM unnest(arrays)` (a handful of round trips per
//! batch instead of several per user), the batch's directory references read once.
//!
//! Taken keys are found without aborting the transaction: the inserts skip conflicting rows
//! (`ON CONFLICT DO NOTHING`) and answer the rows they wrote; a row missing from the answer is a
//! taken key, reported as `UserAlreadyExists` and the transaction rolled back.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use idvault_core::directory::references::{self, DirectoryNeeds};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::{ImportStore, ImportedUser, TakenUserKeys};

use crate::directory::{load_facts, lock_directory};
use crate::users::lock_login_ids;
use crate::{pg_err, PgStore};

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("encoding a column: {e}")))
}

/// The batch, column by column.
#[derive(Default)]
struct UserColumns {
    user_id: Vec<String>,
    login_ids: Vec<String>,
    name: Vec<Option<String>>,
    given_name: Vec<Option<String>>,
    middle_name: Vec<Option<String>>,
    family_name: Vec<Option<String>>,
    email: Vec<Option<String>>,
    phone: Vec<Option<String>>,
    verified_email: Vec<bool>,
    verified_phone: Vec<bool>,
    status: Vec<&'static str>,
    picture: Vec<Option<String>>,
    test: Vec<bool>,
    role_names: Vec<String>,
    tenants: Vec<String>,
    custom_attributes: Vec<String>,
    sso_app_ids: Vec<String>,
    oauth_providers: Vec<String>,
    created_ms: Vec<i64>,
    modified_ms: Vec<i64>,
}

impl UserColumns {
    fn new(users: &[ImportedUser]) -> Result<Self> {
        let mut c = UserColumns::default();
        for u in users {
            let u = &u.user;
            c.user_id.push(u.user_id.to_string());
            c.login_ids.push(to_json(&u.login_ids)?);
            c.name.push(u.name.clone());
            c.given_name.push(u.given_name.clone());
            c.middle_name.push(u.middle_name.clone());
            c.family_name.push(u.family_name.clone());
            c.email.push(u.email.clone());
            c.phone.push(u.phone.clone());
            c.verified_email.push(u.verified_email);
            c.verified_phone.push(u.verified_phone);
            c.status.push(u.status.as_str());
            c.picture.push(u.picture.clone());
            c.test.push(u.test);
            c.role_names.push(to_json(&u.role_names)?);
            c.tenants.push(to_json(&u.tenants)?);
            c.custom_attributes.push(to_json(&u.custom_attributes)?);
            c.sso_app_ids.push(to_json(&u.sso_app_ids)?);
            c.oauth_providers.push(to_json(&u.oauth_providers)?);
            c.created_ms.push(u.created_ms);
            c.modified_ms.push(u.modified_ms);
        }
        Ok(c)
    }
}

const INSERT_USERS: &str =
    "INSERT INTO users (project_id, user_id, login_ids, name, given_name, middle_name, \
     family_name, email, phone, verified_email, verified_phone, status, picture, test, role_names, tenants, \
     custom_attributes, sso_app_ids, oauth_providers, created_ms, modified_ms) \
     SELECT $1, x.user_id, x.login_ids::jsonb, x.name, x.given_name, x.middle_name, x.family_name, x.email, \
     x.phone, x.verified_email, x.verified_phone, x.status, x.picture, x.test, x.role_names::jsonb, \
     x.tenants::jsonb, x.custom_attributes::jsonb, x.sso_app_ids::jsonb, x.oauth_providers::jsonb, \
     x.created_ms, x.modified_ms \
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::bool[], $11::bool[], $12::text[], $13::text[], $14::bool[], $15::text[], $16::text[], \
     $17::text[], $18::text[], $19::text[], $20::bigint[], $21::bigint[]) \
     AS x(user_id, login_ids, name, given_name, middle_name, family_name, email, phone, verified_email, \
     verified_phone, status, picture, test, role_names, tenants, custom_attributes, sso_app_ids, \
     oauth_providers, created_ms, modified_ms) \
     ON CONFLICT (project_id, user_id) DO NOTHING \
     RETURNING user_id, pk";

const INSERT_LOGIN_IDS: &str = "INSERT INTO user_login_ids (project_id, login_id, user_pk) \
     SELECT $1, l, p FROM unnest($2::text[], $3::bigint[]) AS x(l, p) \
     ON CONFLICT DO NOTHING RETURNING login_id";

const INSERT_ROLES: &str = "INSERT INTO user_roles (user_pk, tenant_id, role_name) \
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING";

const INSERT_TENANTS: &str = "INSERT INTO user_tenants (user_pk, tenant_id) \
     SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING";

const INSERT_TOKENS: &str = "INSERT INTO provider_tokens (user_pk, provider, provider_user_id, access_token, \
     refresh_token, expiration, scopes, updated_ms, version, reauth_required) \
     SELECT x.p, x.provider, x.provider_user_id, x.access_token, x.refresh_token, x.expiration, \
     x.scopes::jsonb, x.updated_ms, 1, FALSE \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::bigint[], $7::text[], \
     $8::bigint[]) AS x(p, provider, provider_user_id, access_token, refresh_token, expiration, scopes, updated_ms)";

const INSERT_OUTBOUND: &str = "INSERT INTO outbound_tokens (project_id, id, app_id, owner_kind, owner_id, \
     tenant_id, user_pk, owner_tenant, scope_key, scopes, access_token, refresh_token, access_token_type, \
     expiration, granted_by, external_identifier, token_sub, last_refresh_ms, last_refresh_error, created_ms, \
     updated_ms, version, reauth_required) \
     SELECT $1, x.id, x.app_id, 'user', x.owner_id, x.tenant_id, x.p, NULL, x.scope_key, x.scopes::jsonb, \
     x.access_token, x.refresh_token, x.access_token_type, x.expiration, x.granted_by, x.external_identifier, \
     x.token_sub, 0, '', x.created_ms, x.updated_ms, 1, FALSE \
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], \
     $9::bytea[], $10::bytea[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[], \
     $16::bigint[], $17::bigint[]) \
     AS x(id, app_id, owner_id, tenant_id, p, scope_key, scopes, access_token, refresh_token, \
     access_token_type, expiration, granted_by, external_identifier, token_sub, created_ms, updated_ms)";

#[async_trait]
impl ImportStore for PgStore {
    async fn taken_user_keys(
        &self,
        project: &ProjectId,
        user_ids: &[String],
        login_ids: &[String],
    ) -> Result<TakenUserKeys> {
        let c = self.conn().await?;
        let mut out = TakenUserKeys::default();
        if !user_ids.is_empty() {
            let rows = c
                .query(
                    "SELECT user_id FROM users WHERE project_id = $1 AND user_id = ANY($2::text[])",
                    &[&project.as_str(), &user_ids],
                )
                .await
                .map_err(pg_err)?;
            out.user_ids = rows.iter().map(|r| r.try_get(0).map_err(pg_err)).collect::<Result<_>>()?;
        }
        if !login_ids.is_empty() {
            let rows = c
                .query(
                    "SELECT login_id FROM user_login_ids WHERE project_id = $1 AND login_id = ANY($2::text[])",
                    &[&project.as_str(), &login_ids],
                )
                .await
                .map_err(pg_err)?;
            out.login_ids = rows.iter().map(|r| r.try_get(0).map_err(pg_err)).collect::<Result<_>>()?;
        }
        Ok(out)
    }

    async fn import_users(&self, project: &ProjectId, users: Vec<ImportedUser>) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let cols = UserColumns::new(&users)?;
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        // The locks every user write takes, in the same order (see lib.rs).
        lock_directory(&tx, project, false).await?;
        lock_login_ids(&tx, project, users.iter().flat_map(|u| u.user.login_ids.iter())).await?;
        let facts =
            load_facts(&tx, project, &DirectoryNeeds::to_check_all(users.iter().map(|u| &u.user))).await?;
        for u in &users {
            references::check_references(&u.user, &facts)?;
        }

        let pid = project.as_str();
        let rows = tx
            .query(
                INSERT_USERS,
                &[
                    &pid,
                    &cols.user_id,
                    &cols.login_ids,
                    &cols.name,
                    &cols.given_name,
                    &cols.middle_name,
                    &cols.family_name,
                    &cols.email,
                    &cols.phone,
                    &cols.verified_email,
                    &cols.verified_phone,
                    &cols.status,
                    &cols.picture,
                    &cols.test,
                    &cols.role_names,
                    &cols.tenants,
                    &cols.custom_attributes,
                    &cols.sso_app_ids,
                    &cols.oauth_providers,
                    &cols.created_ms,
                    &cols.modified_ms,
                ],
            )
            .await
            .map_err(pg_err)?;
        let mut pks: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        for r in &rows {
            pks.insert(r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?);
        }
        let mut user_pks = Vec::with_capacity(users.len());
        for (u, id) in users.iter().zip(&cols.user_id) {
            // Skipped: taken in the project, or twice in the batch (the second is skipped).
            match pks.remove(id) {
                Some(pk) => user_pks.push(pk),
                None => return Err(Error::UserAlreadyExists(format!("user id {}", u.user.user_id))),
            }
        }

        let (mut logins, mut login_pks) = (Vec::new(), Vec::new());
        let (mut role_pks, mut role_tenants, mut role_names) = (Vec::new(), Vec::new(), Vec::new());
        let (mut tenant_pks, mut tenant_ids) = (Vec::new(), Vec::new());
        for (u, &pk) in users.iter().zip(&user_pks) {
            let u = &u.user;
            for l in &u.login_ids {
                logins.push(l.as_str());
                login_pks.push(pk);
            }
            for r in &u.role_names {
                role_pks.push(pk);
                role_tenants.push("");
                role_names.push(r.as_str());
            }
            for t in &u.tenants {
                tenant_pks.push(pk);
                tenant_ids.push(t.tenant_id.as_str());
                for r in &t.role_names {
                    role_pks.push(pk);
                    role_tenants.push(t.tenant_id.as_str());
                    role_names.push(r.as_str());
                }
            }
        }
        let inserted = tx.query(INSERT_LOGIN_IDS, &[&pid, &logins, &login_pks]).await.map_err(pg_err)?;
        if inserted.len() != logins.len() {
            let written: HashSet<String> =
                inserted.iter().map(|r| r.try_get(0).map_err(pg_err)).collect::<Result<_>>()?;
            // In batch order, as SQLite answers; a login id twice in the batch: its second use.
            let mut seen = HashSet::new();
            let taken = logins.iter().find(|l| !written.contains(**l) || !seen.insert(**l)).copied();
            return Err(Error::UserAlreadyExists(taken.unwrap_or_default().to_owned()));
        }
        if !role_pks.is_empty() {
            tx.execute(INSERT_ROLES, &[&role_pks, &role_tenants, &role_names]).await.map_err(pg_err)?;
        }
        if !tenant_pks.is_empty() {
            tx.execute(INSERT_TENANTS, &[&tenant_pks, &tenant_ids]).await.map_err(pg_err)?;
        }

        self.insert_tokens(&tx, &users, &user_pks).await?;
        self.insert_outbound(&tx, pid, &users, &user_pks).await?;
        tx.commit().await.map_err(pg_err)
    }
}

impl PgStore {
    async fn insert_tokens(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        users: &[ImportedUser],
        user_pks: &[i64],
    ) -> Result<()> {
        let (mut pks, mut providers, mut provider_user_ids) = (Vec::new(), Vec::new(), Vec::new());
        let (mut access, mut refresh, mut expiration) = (Vec::new(), Vec::new(), Vec::new());
        let (mut scopes, mut updated) = (Vec::new(), Vec::new());
        for (u, &pk) in users.iter().zip(user_pks) {
            for t in &u.tokens {
                pks.push(pk);
                providers.push(t.provider.as_str());
                provider_user_ids.push(t.provider_user_id.as_str());
                access.push(t.access_token.as_slice());
                refresh.push(t.refresh_token.as_deref());
                expiration.push(t.expiration);
                scopes.push(to_json(&t.scopes)?);
                updated.push(t.updated_ms);
            }
        }
        if pks.is_empty() {
            return Ok(());
        }
        tx.execute(
            INSERT_TOKENS,
            &[&pks, &providers, &provider_user_ids, &access, &refresh, &expiration, &scopes, &updated],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn insert_outbound(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        pid: &str,
        users: &[ImportedUser],
        user_pks: &[i64],
    ) -> Result<()> {
        let (mut ids, mut apps, mut owners, mut tenants) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut pks, mut scope_keys, mut scopes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut access, mut refresh, mut types, mut expiration) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut granted_by, mut external, mut subs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut created, mut updated) = (Vec::new(), Vec::new());
        for (u, &pk) in users.iter().zip(user_pks) {
            for t in &u.outbound_tokens {
                ids.push(t.id.as_str());
                apps.push(t.app_id.as_str());
                owners.push(t.owner.id());
                tenants.push(t.tenant_id.as_str());
                pks.push(pk);
                scope_keys.push(t.scope_key());
                scopes.push(to_json(&t.scopes)?);
                access.push(t.access_token.as_deref());
                refresh.push(t.refresh_token.as_deref());
                types.push(t.access_token_type.as_str());
                expiration.push(t.expiration);
                granted_by.push(t.granted_by.as_str());
                external.push(t.external_identifier.as_str());
                subs.push(t.token_sub.as_str());
                created.push(t.created_ms);
                updated.push(t.updated_ms);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            INSERT_OUTBOUND,
            &[
                &pid,
                &ids,
                &apps,
                &owners,
                &tenants,
                &pks,
                &scope_keys,
                &scopes,
                &access,
                &refresh,
                &types,
                &expiration,
                &granted_by,
                &external,
                &subs,
                &created,
                &updated,
            ],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }
}
