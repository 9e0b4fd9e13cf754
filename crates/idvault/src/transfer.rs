//! `idvault export` / `idvault import`: a whole project as JSON Lines, to move it between
//! backends (SQLite ⇄ PostgreSQL) or machines. Secrets travel as stored: provider tokens and
//! client secrets sealed under the project's data key, data keys wrapped by the master keyring,
//! management keys and access keys as hashes. The target server needs the same master keyring to read tokens;
//! the file alone reveals no secret. Sessions, pending sign-ins and login history are not moved.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use idvault_core::access_key::{AccessKey, KeyTenant};
use idvault_core::auth::{ProjectAuthSettings, SigningKeyRecord};
use idvault_core::directory::{AttributeDef, AttributeOption, AttributeType, Permission, Role, Tenant};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::outbound::{SealedOutboundToken, TokenOwner};
use idvault_core::project::{ManagementKey, Project};
use idvault_core::provider::{AppSettings, ClientAuthMethod, ProviderConfig};
use idvault_core::store::{IdentityLink, Store, TransferStore, WrappedDataKey};
use idvault_core::user::{TestUserFilter, User, UserQuery, UserStatus, UserTenant};
use idvault_core::vault::SealedToken;

const FORMAT_VERSION: u32 = 1;

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(s: &str) -> anyhow::Result<Vec<u8>> {
    B64.decode(s).context("invalid base64 in export file")
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum Record {
    Header {
        version: u32,
        project_id: String,
    },
    Project {
        id: String,
        name: String,
        created_ms: i64,
        redirect_urls: Vec<String>,
        link_by_verified_email: bool,
    },
    ManagementKey {
        key_id: String,
        name: String,
        key_hash: String,
        created_ms: i64,
        expires_ms: Option<i64>,
        revoked_ms: Option<i64>,
    },
    DataKey {
        version: u32,
        wrapped: String,
        master_key_version: u32,
        created_ms: i64,
    },
    SigningKey {
        kid: String,
        alg: String,
        private_key: String,
        public_jwk: String,
        created_ms: i64,
        retired_ms: Option<i64>,
    },
    Provider(Box<ProviderRecord>),
    Permission {
        id: String,
        name: String,
        description: String,
        created_ms: i64,
    },
    Tenant {
        id: String,
        name: String,
        self_provisioning_domains: Vec<String>,
        custom_attributes: Map<String, Value>,
        disabled: bool,
        #[serde(default)]
        enforce_sso: bool,
        created_ms: i64,
    },
    Role {
        id: String,
        name: String,
        tenant_id: Option<String>,
        description: String,
        permission_names: Vec<String>,
        default: bool,
        private: bool,
        created_ms: i64,
    },
    Attribute {
        name: String,
        kind: i64,
        display_name: String,
        options: Vec<(String, String)>,
        required: bool,
    },
    User(Box<UserRecord>),
    Token(Box<TokenRecord>),
    OutboundToken(Box<OutboundTokenRecord>),
    Identity {
        provider: String,
        provider_user_id: String,
        user_id: String,
    },
    AccessKey(Box<AccessKeyRecord>),
    Footer {
        counts: Counts,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderRecord {
    name: String,
    client_id: String,
    client_secret: Option<String>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    scopes: Vec<String>,
    auth_method: String,
    created_ms: i64,
    updated_ms: i64,
    /// The outbound app's name and fields (absent in exports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<AppSettings>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRecord {
    user_id: String,
    login_ids: Vec<String>,
    name: Option<String>,
    given_name: Option<String>,
    middle_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    verified_email: bool,
    verified_phone: bool,
    role_names: Vec<String>,
    tenants: Vec<(String, Vec<String>)>,
    status: String,
    picture: Option<String>,
    test: bool,
    custom_attributes: Map<String, Value>,
    sso_app_ids: Vec<String>,
    oauth_providers: Vec<String>,
    created_ms: i64,
    modified_ms: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRecord {
    user_id: String,
    provider: String,
    provider_user_id: String,
    access_token: String,
    refresh_token: Option<String>,
    expiration: i64,
    scopes: Vec<String>,
    updated_ms: i64,
    reauth_required: bool,
}

/// An access key, its secret as stored (the SHA-256 digest, base64).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessKeyRecord {
    id: String,
    name: String,
    description: String,
    role_names: Vec<String>,
    key_tenants: Vec<KeyTenant>,
    active: bool,
    expire_time: i64,
    created_by: String,
    bound_user_id: String,
    custom_claims: Map<String, Value>,
    custom_attributes: Map<String, Value>,
    permitted_ips: Vec<String>,
    secret_hash: String,
    created_ms: i64,
    updated_ms: i64,
}

fn access_key_record(k: AccessKey) -> AccessKeyRecord {
    AccessKeyRecord {
        secret_hash: b64(&k.secret_hash),
        id: k.id,
        name: k.name,
        description: k.description,
        role_names: k.role_names,
        key_tenants: k.key_tenants,
        active: k.active,
        expire_time: k.expire_time,
        created_by: k.created_by,
        bound_user_id: k.bound_user_id,
        custom_claims: k.custom_claims,
        custom_attributes: k.custom_attributes,
        permitted_ips: k.permitted_ips,
        created_ms: k.created_ms,
        updated_ms: k.updated_ms,
    }
}

fn access_key_from(project: &ProjectId, r: AccessKeyRecord) -> anyhow::Result<AccessKey> {
    let secret_hash: [u8; 32] =
        unb64(&r.secret_hash)?.try_into().map_err(|_| anyhow::anyhow!("bad access key digest"))?;
    Ok(AccessKey {
        id: r.id,
        project_id: project.clone(),
        name: r.name,
        description: r.description,
        role_names: r.role_names,
        key_tenants: r.key_tenants,
        active: r.active,
        expire_time: r.expire_time,
        created_by: r.created_by,
        bound_user_id: r.bound_user_id,
        custom_claims: r.custom_claims,
        custom_attributes: r.custom_attributes,
        permitted_ips: r.permitted_ips,
        secret_hash,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
    })
}

/// An outbound app token, secrets as stored (sealed, base64).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutboundTokenRecord {
    id: String,
    app_id: String,
    /// `user` or `tenant`.
    owner_kind: String,
    owner_id: String,
    tenant_id: String,
    scopes: Vec<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    access_token_type: String,
    expiration: i64,
    granted_by: String,
    external_identifier: String,
    token_sub: String,
    last_refresh_ms: i64,
    last_refresh_error: String,
    created_ms: i64,
    updated_ms: i64,
    reauth_required: bool,
}

fn outbound_record(t: SealedOutboundToken) -> OutboundTokenRecord {
    OutboundTokenRecord {
        owner_kind: t.owner.kind().to_owned(),
        owner_id: t.owner.id().to_owned(),
        id: t.id,
        app_id: t.app_id.into_string(),
        tenant_id: t.tenant_id,
        scopes: t.scopes,
        access_token: t.access_token.as_deref().map(b64),
        refresh_token: t.refresh_token.as_deref().map(b64),
        access_token_type: t.access_token_type,
        expiration: t.expiration,
        granted_by: t.granted_by,
        external_identifier: t.external_identifier,
        token_sub: t.token_sub,
        last_refresh_ms: t.last_refresh_ms,
        last_refresh_error: t.last_refresh_error,
        created_ms: t.created_ms,
        updated_ms: t.updated_ms,
        reauth_required: t.reauth_required,
    }
}

fn outbound_from(r: OutboundTokenRecord) -> anyhow::Result<SealedOutboundToken> {
    let owner = match r.owner_kind.as_str() {
        "user" => TokenOwner::User(UserId::parse(&r.owner_id)?),
        "tenant" => TokenOwner::Tenant(r.owner_id),
        other => bail!("outbound token {} has an unknown owner kind '{other}'", r.id),
    };
    Ok(SealedOutboundToken {
        id: r.id,
        app_id: ProviderName::parse(&r.app_id)?,
        owner,
        tenant_id: r.tenant_id,
        scopes: r.scopes,
        access_token: r.access_token.as_deref().map(unb64).transpose()?,
        refresh_token: r.refresh_token.as_deref().map(unb64).transpose()?,
        access_token_type: r.access_token_type,
        expiration: r.expiration,
        granted_by: r.granted_by,
        external_identifier: r.external_identifier,
        token_sub: r.token_sub,
        last_refresh_ms: r.last_refresh_ms,
        last_refresh_error: r.last_refresh_error,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        version: 1,
        reauth_required: r.reauth_required,
    })
}

/// How many of each record a file holds (written last, checked after an import).
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub management_keys: u64,
    pub data_keys: u64,
    pub signing_keys: u64,
    pub providers: u64,
    pub permissions: u64,
    pub tenants: u64,
    pub roles: u64,
    pub attributes: u64,
    pub users: u64,
    pub tokens: u64,
    /// Absent in files of versions without outbound apps.
    #[serde(default)]
    pub outbound_tokens: u64,
    pub identities: u64,
    /// Absent in files of versions without access keys.
    #[serde(default)]
    pub access_keys: u64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn user_record(u: User) -> UserRecord {
    UserRecord {
        user_id: u.user_id.into_string(),
        login_ids: u.login_ids,
        name: u.name,
        given_name: u.given_name,
        middle_name: u.middle_name,
        family_name: u.family_name,
        email: u.email,
        phone: u.phone,
        verified_email: u.verified_email,
        verified_phone: u.verified_phone,
        role_names: u.role_names,
        tenants: u.tenants.into_iter().map(|t| (t.tenant_id, t.role_names)).collect(),
        status: u.status.as_str().to_owned(),
        picture: u.picture,
        test: u.test,
        custom_attributes: u.custom_attributes,
        sso_app_ids: u.sso_app_ids,
        oauth_providers: u.oauth_providers,
        created_ms: u.created_ms,
        modified_ms: u.modified_ms,
    }
}

fn user_from(r: UserRecord) -> anyhow::Result<User> {
    Ok(User {
        user_id: UserId::parse(&r.user_id)?,
        login_ids: r.login_ids,
        name: r.name,
        given_name: r.given_name,
        middle_name: r.middle_name,
        family_name: r.family_name,
        email: r.email,
        phone: r.phone,
        verified_email: r.verified_email,
        verified_phone: r.verified_phone,
        role_names: r.role_names,
        tenants: r
            .tenants
            .into_iter()
            .map(|(tenant_id, role_names)| UserTenant { tenant_id, role_names, ..Default::default() })
            .collect(),
        status: UserStatus::parse(&r.status)?,
        picture: r.picture,
        test: r.test,
        custom_attributes: r.custom_attributes,
        sso_app_ids: r.sso_app_ids,
        oauth_providers: r.oauth_providers,
        created_ms: r.created_ms,
        modified_ms: r.modified_ms,
    })
}

/// All users of a project, in pages.
async fn all_users(store: &dyn Store, project: &ProjectId) -> anyhow::Result<Vec<User>> {
    let mut out = Vec::new();
    let mut page = 0;
    loop {
        let q = UserQuery { test: TestUserFilter::Include, limit: 1000, page, ..Default::default() };
        let (users, total) = store.search_users(project, &q).await?;
        let n = users.len();
        out.extend(users);
        if n == 0 || out.len() as u64 >= total {
            break;
        }
        page += 1;
    }
    Ok(out)
}

/// Counts what the store holds for a project, for the verification after an import.
pub async fn count(
    store: &dyn Store,
    transfer: &dyn TransferStore,
    project: &ProjectId,
) -> anyhow::Result<Counts> {
    let q = UserQuery { test: TestUserFilter::Include, limit: 1, ..Default::default() };
    Ok(Counts {
        management_keys: store.list_keys(project).await?.len() as u64,
        data_keys: store.list_data_keys().await?.iter().filter(|k| &k.project_id == project).count() as u64,
        signing_keys: store.list_signing_keys(project).await?.len() as u64,
        providers: store.list_providers(project).await?.len() as u64,
        permissions: store.list_permissions(project).await?.len() as u64,
        tenants: store.list_tenants(project).await?.len() as u64,
        roles: store.list_roles(project).await?.len() as u64,
        attributes: store.list_attribute_defs(project).await?.len() as u64,
        users: store.search_users(project, &q).await?.1,
        tokens: transfer.export_tokens(project).await?.len() as u64,
        outbound_tokens: transfer.export_outbound_tokens(project).await?.len() as u64,
        identities: transfer.export_identities(project).await?.len() as u64,
        access_keys: store.list_access_keys(project).await?.len() as u64,
    })
}

/// Creates (or truncates) the export file, owner-only (0600) whatever the umask: it holds user
/// data and sealed secrets. An existing file keeps its inode but is narrowed to 0600 first.
fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

pub async fn export(
    store: &dyn Store,
    transfer: &dyn TransferStore,
    project: &ProjectId,
    out: &Path,
) -> anyhow::Result<Counts> {
    let p: Project = store.get_project(project).await?.with_context(|| format!("no project {project}"))?;
    let settings: ProjectAuthSettings = store.get_auth_settings(project).await?;
    let file = create_owner_only(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::new(file);
    let mut counts = Counts::default();
    let put = |w: &mut BufWriter<std::fs::File>, r: &Record| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *w, r)?;
        w.write_all(b"\n")?;
        Ok(())
    };
    put(&mut w, &Record::Header { version: FORMAT_VERSION, project_id: project.to_string() })?;
    put(
        &mut w,
        &Record::Project {
            id: p.id.to_string(),
            name: p.name,
            created_ms: p.created_ms,
            redirect_urls: settings.redirect_urls,
            link_by_verified_email: settings.link_by_verified_email,
        },
    )?;
    for k in store.list_keys(project).await? {
        counts.management_keys += 1;
        put(
            &mut w,
            &Record::ManagementKey {
                key_id: k.key_id,
                name: k.name,
                key_hash: b64(&k.key_hash),
                created_ms: k.created_ms,
                expires_ms: k.expires_ms,
                revoked_ms: k.revoked_ms,
            },
        )?;
    }
    for k in store.list_data_keys().await?.into_iter().filter(|k| &k.project_id == project) {
        counts.data_keys += 1;
        put(
            &mut w,
            &Record::DataKey {
                version: k.version,
                wrapped: b64(&k.wrapped),
                master_key_version: k.master_key_version,
                created_ms: k.created_ms,
            },
        )?;
    }
    for k in store.list_signing_keys(project).await? {
        counts.signing_keys += 1;
        put(
            &mut w,
            &Record::SigningKey {
                kid: k.kid,
                alg: k.alg,
                private_key: b64(&k.private_key),
                public_jwk: k.public_jwk,
                created_ms: k.created_ms,
                retired_ms: k.retired_ms,
            },
        )?;
    }
    for c in store.list_providers(project).await? {
        counts.providers += 1;
        put(
            &mut w,
            &Record::Provider(Box::new(ProviderRecord {
                name: c.name.into_string(),
                client_id: c.client_id,
                client_secret: c.client_secret.as_deref().map(b64),
                issuer: c.issuer,
                authorization_endpoint: c.authorization_endpoint,
                token_endpoint: c.token_endpoint,
                userinfo_endpoint: c.userinfo_endpoint,
                jwks_uri: c.jwks_uri,
                scopes: c.scopes,
                auth_method: c.auth_method.as_str().to_owned(),
                created_ms: c.created_ms,
                updated_ms: c.updated_ms,
                display_name: c.display_name,
                app: c.app,
            })),
        )?;
    }
    for x in store.list_permissions(project).await? {
        counts.permissions += 1;
        put(
            &mut w,
            &Record::Permission {
                id: x.id,
                name: x.name,
                description: x.description,
                created_ms: x.created_ms,
            },
        )?;
    }
    for t in store.list_tenants(project).await? {
        counts.tenants += 1;
        put(
            &mut w,
            &Record::Tenant {
                id: t.id,
                name: t.name,
                self_provisioning_domains: t.self_provisioning_domains,
                custom_attributes: t.custom_attributes,
                disabled: t.disabled,
                enforce_sso: t.enforce_sso,
                created_ms: t.created_ms,
            },
        )?;
    }
    for r in store.list_roles(project).await? {
        counts.roles += 1;
        put(
            &mut w,
            &Record::Role {
                id: r.id,
                name: r.name,
                tenant_id: r.tenant_id,
                description: r.description,
                permission_names: r.permission_names,
                default: r.default,
                private: r.private,
                created_ms: r.created_ms,
            },
        )?;
    }
    for a in store.list_attribute_defs(project).await? {
        counts.attributes += 1;
        put(
            &mut w,
            &Record::Attribute {
                name: a.name,
                kind: a.kind as i64,
                display_name: a.display_name,
                options: a.options.into_iter().map(|o| (o.value, o.label)).collect(),
                required: a.required,
            },
        )?;
    }
    let users = all_users(store, project).await?;
    let progress = bar(users.len() as u64, "users ");
    for u in users {
        counts.users += 1;
        put(&mut w, &Record::User(Box::new(user_record(u))))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let tokens = transfer.export_tokens(project).await?;
    let progress = bar(tokens.len() as u64, "tokens");
    for (user, t) in tokens {
        counts.tokens += 1;
        put(
            &mut w,
            &Record::Token(Box::new(TokenRecord {
                user_id: user.into_string(),
                provider: t.provider.into_string(),
                provider_user_id: t.provider_user_id,
                access_token: b64(&t.access_token),
                refresh_token: t.refresh_token.as_deref().map(b64),
                expiration: t.expiration,
                scopes: t.scopes,
                updated_ms: t.updated_ms,
                reauth_required: t.reauth_required,
            })),
        )?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    for t in transfer.export_outbound_tokens(project).await? {
        counts.outbound_tokens += 1;
        put(&mut w, &Record::OutboundToken(Box::new(outbound_record(t))))?;
    }
    for i in transfer.export_identities(project).await? {
        counts.identities += 1;
        put(
            &mut w,
            &Record::Identity {
                provider: i.provider.into_string(),
                provider_user_id: i.provider_user_id,
                user_id: i.user_id.into_string(),
            },
        )?;
    }
    for k in store.list_access_keys(project).await? {
        counts.access_keys += 1;
        put(&mut w, &Record::AccessKey(Box::new(access_key_record(k))))?;
    }
    put(&mut w, &Record::Footer { counts: counts.clone() })?;
    w.flush()?;
    w.get_ref().sync_all()?;
    Ok(counts)
}

/// Imports a file into an empty project slot of `store`. Answers the file's counts and the
/// counts found in the store afterwards (the verification).
pub async fn import(
    store: &dyn Store,
    transfer: &dyn TransferStore,
    input: &Path,
) -> anyhow::Result<(Counts, Counts)> {
    let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let progress = bar(lines.len() as u64, "records");
    let mut project: Option<ProjectId> = None;
    let mut expected = None;
    let mut users: Vec<User> = Vec::new();
    let mut tokens: Vec<(UserId, SealedToken)> = Vec::new();
    let mut outbound: Vec<SealedOutboundToken> = Vec::new();
    let pid = |p: &Option<ProjectId>| p.clone().context("the file has no project record before its data");
    for (n, line) in lines.iter().enumerate() {
        let record: Record = serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        match record {
            Record::Header { version, .. } if version != FORMAT_VERSION => {
                bail!("unsupported export format version {version}")
            }
            Record::Header { .. } => {}
            Record::Project { id, name, created_ms, redirect_urls, link_by_verified_email } => {
                let id = ProjectId::parse(&id)?;
                if store.get_project(&id).await?.is_some() {
                    bail!("project {id} already exists in the target");
                }
                store.create_project(&Project { id: id.clone(), name, created_ms }).await?;
                store
                    .set_auth_settings(&id, &ProjectAuthSettings { redirect_urls, link_by_verified_email })
                    .await?;
                project = Some(id);
            }
            Record::ManagementKey { key_id, name, key_hash, created_ms, expires_ms, revoked_ms } => {
                let hash: [u8; 32] =
                    unb64(&key_hash)?.try_into().map_err(|_| anyhow::anyhow!("bad key hash"))?;
                store
                    .insert_key(&ManagementKey {
                        key_id,
                        project_id: pid(&project)?,
                        name,
                        key_hash: hash,
                        created_ms,
                        expires_ms,
                        revoked_ms,
                    })
                    .await?;
            }
            Record::DataKey { version, wrapped, master_key_version, created_ms } => {
                let key = WrappedDataKey {
                    project_id: pid(&project)?,
                    version,
                    wrapped: unb64(&wrapped)?,
                    master_key_version,
                    created_ms,
                };
                store.insert_data_key(&key).await?;
            }
            Record::SigningKey { kid, alg, private_key, public_jwk, created_ms, retired_ms } => {
                store
                    .insert_signing_key(&SigningKeyRecord {
                        project_id: pid(&project)?,
                        kid,
                        alg,
                        private_key: unb64(&private_key)?,
                        public_jwk,
                        created_ms,
                        retired_ms,
                    })
                    .await?;
            }
            Record::Provider(p) => {
                let config = ProviderConfig {
                    name: ProviderName::parse(&p.name)?,
                    client_id: p.client_id,
                    client_secret: p.client_secret.as_deref().map(unb64).transpose()?,
                    issuer: p.issuer,
                    authorization_endpoint: p.authorization_endpoint,
                    token_endpoint: p.token_endpoint,
                    userinfo_endpoint: p.userinfo_endpoint,
                    jwks_uri: p.jwks_uri,
                    scopes: p.scopes,
                    auth_method: ClientAuthMethod::parse(&p.auth_method)?,
                    created_ms: p.created_ms,
                    updated_ms: p.updated_ms,
                    display_name: p.display_name,
                    app: p.app,
                };
                store.put_provider(&pid(&project)?, &config).await?;
            }
            Record::Permission { id, name, description, created_ms } => {
                store
                    .create_permission(&pid(&project)?, &Permission { id, name, description, created_ms })
                    .await?;
            }
            Record::Tenant {
                id,
                name,
                self_provisioning_domains,
                custom_attributes,
                disabled,
                enforce_sso,
                created_ms,
            } => {
                let t = Tenant {
                    id,
                    name,
                    self_provisioning_domains,
                    custom_attributes,
                    disabled,
                    enforce_sso,
                    created_ms,
                };
                store.create_tenant(&pid(&project)?, &t).await?;
            }
            Record::Role {
                id,
                name,
                tenant_id,
                description,
                permission_names,
                default,
                private,
                created_ms,
            } => {
                let r =
                    Role { id, name, tenant_id, description, permission_names, default, private, created_ms };
                store.create_role(&pid(&project)?, &r).await?;
            }
            Record::Attribute { name, kind, display_name, options, required } => {
                let def = AttributeDef {
                    name,
                    kind: AttributeType::from_number(kind)?,
                    display_name,
                    options: options
                        .into_iter()
                        .map(|(value, label)| AttributeOption { value, label })
                        .collect(),
                    required,
                };
                store.put_attribute_defs(&pid(&project)?, &[def]).await?;
            }
            Record::User(u) => {
                users.push(user_from(*u)?);
                if users.len() >= 1000 {
                    store.create_users(&pid(&project)?, &users).await?;
                    users.clear();
                }
            }
            Record::Token(t) => tokens.push((
                UserId::parse(&t.user_id)?,
                SealedToken {
                    provider: ProviderName::parse(&t.provider)?,
                    provider_user_id: t.provider_user_id,
                    access_token: unb64(&t.access_token)?,
                    refresh_token: t.refresh_token.as_deref().map(unb64).transpose()?,
                    expiration: t.expiration,
                    scopes: t.scopes,
                    updated_ms: t.updated_ms,
                    version: 0,
                    reauth_required: t.reauth_required,
                },
            )),
            Record::OutboundToken(t) => outbound.push(outbound_from(*t)?),
            Record::Identity { provider, provider_user_id, user_id } => {
                if !users.is_empty() {
                    store.create_users(&pid(&project)?, &users).await?;
                    users.clear();
                }
                let link = IdentityLink {
                    provider: ProviderName::parse(&provider)?,
                    provider_user_id,
                    user_id: UserId::parse(&user_id)?,
                };
                transfer.import_identity(&pid(&project)?, &link).await?;
            }
            Record::AccessKey(k) => {
                let project = pid(&project)?;
                let key = access_key_from(&project, *k)?;
                if !store.insert_access_key(&key, u64::MAX).await? {
                    bail!("access key {} could not be stored", key.id);
                }
            }
            Record::Footer { counts } => expected = Some(counts),
        }
        progress.inc(1);
    }
    let project = pid(&project)?;
    if !users.is_empty() {
        store.create_users(&project, &users).await?;
    }
    for (user, token) in &tokens {
        if !store.put_token(&project, user, token).await? {
            bail!("token of unknown user {user}");
        }
        if token.reauth_required {
            store.flag_reauth_required(&project, user, &token.provider, 1).await?;
        }
    }
    // After users, tenants and apps: a token's owner and app must exist. Ids are kept.
    for token in &outbound {
        if store.put_outbound_token(&project, token, usize::MAX).await?.is_none() {
            bail!("outbound token {} could not be stored", token.id);
        }
        if token.reauth_required {
            store
                .flag_outbound_reauth(
                    &project,
                    &token.id,
                    1,
                    &token.last_refresh_error,
                    token.last_refresh_ms,
                )
                .await?;
        }
    }
    progress.finish_and_clear();
    let expected = expected.context("the file has no footer: it is truncated")?;
    let found = count(store, transfer, &project).await?;
    Ok((expected, found))
}
