//! The audit trail: who read, refreshed, stored or deleted which token, who changed which user,
//! tenant, role, permission, access key, management key, provider or outbound app, who signed in
//! or out, which sign-ins, access key exchanges and sessions were refused, and which
//! management-key checks failed.
//!
//! What is audited is decided here and in the services that call [`Audit::record`], never in the
//! HTTP handlers, so that every path through core (API, future transports) leaves the same
//! records. A record never holds a secret: no token, no key, no key digest, no client secret.
//!
//! Recording must not slow the hot paths (a token read is a few hundred microseconds): a record
//! is handed to an [`AuditSink`] without waiting. The server's sink ([`writer::start`]) is a
//! bounded channel drained by a background task that writes batches (see [`writer`]).
//!
//! Who acts and from where is known by the transport, not by the services: the API runs each
//! request inside [`scope`] with the client's address (the TCP peer, or the client a trusted
//! reverse proxy forwarded), and [`crate::project::ProjectService`] puts the authenticated
//! management key into that scope; records read both from it.

pub mod writer;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::ProjectId;

/// The actions this server records. Names follow Descope's (`LoginSucceed`, `UserCreated`, ...)
/// where Descope has one; the rest are idvault's own.
pub mod actions {
    pub const PROVIDER_TOKEN_READ: &str = "ProviderTokenRead";
    pub const PROVIDER_TOKEN_REFRESHED: &str = "ProviderTokenRefreshed";
    pub const PROVIDER_TOKEN_FORCED_REFRESH: &str = "ProviderTokenForcedRefresh";
    pub const PROVIDER_TOKEN_UPLOADED: &str = "ProviderTokenUploaded";
    pub const PROVIDER_TOKEN_DELETED: &str = "ProviderTokenDeleted";
    pub const OUTBOUND_TOKEN_FETCHED: &str = "OutboundTokenFetched";
    pub const OUTBOUND_TOKEN_REFRESHED: &str = "OutboundTokenRefreshed";
    pub const OUTBOUND_TOKEN_FORCED_REFRESH: &str = "OutboundTokenForcedRefresh";
    pub const OUTBOUND_TOKEN_UPLOADED: &str = "OutboundTokenUploaded";
    pub const OUTBOUND_TOKEN_DELETED: &str = "OutboundTokenDeleted";
    pub const USER_CREATED: &str = "UserCreated";
    pub const USER_MODIFIED: &str = "UserModified";
    pub const USER_DELETED: &str = "UserDeleted";
    pub const TEST_USERS_DELETED: &str = "TestUsersDeleted";
    pub const USER_LOGGED_OUT: &str = "UserLoggedOut";
    pub const TENANT_CREATED: &str = "TenantCreated";
    pub const TENANT_MODIFIED: &str = "TenantModified";
    pub const TENANT_DELETED: &str = "TenantDeleted";
    pub const LOGIN_SUCCEED: &str = "LoginSucceed";
    /// A refused sign-in, access key exchange or session (kind `warn`); `data.error_message`
    /// says why, as Descope's does.
    pub const LOGIN_FAILED: &str = "LoginFailed";
    pub const SESSION_REFRESHED: &str = "RefreshSucceed";
    pub const MANAGEMENT_KEY_CHECK_FAILED: &str = "ManagementKeyCheckFailed";
    pub const MANAGEMENT_KEY_CREATED: &str = "ManagementKeyCreated";
    pub const MANAGEMENT_KEY_UPDATED: &str = "ManagementKeyUpdated";
    pub const MANAGEMENT_KEY_REVOKED: &str = "ManagementKeyRevoked";
    pub const ROLE_CREATED: &str = "RoleCreated";
    pub const ROLE_MODIFIED: &str = "RoleModified";
    pub const ROLE_DELETED: &str = "RoleDeleted";
    pub const PERMISSION_CREATED: &str = "PermissionCreated";
    pub const PERMISSION_MODIFIED: &str = "PermissionModified";
    pub const PERMISSION_DELETED: &str = "PermissionDeleted";
    pub const ACCESS_KEY_CREATED: &str = "AccessKeyCreated";
    pub const ACCESS_KEY_MODIFIED: &str = "AccessKeyModified";
    pub const ACCESS_KEY_DELETED: &str = "AccessKeyDeleted";
    pub const PROVIDER_CONFIG_CREATED: &str = "ProviderConfigCreated";
    pub const PROVIDER_CONFIG_MODIFIED: &str = "ProviderConfigModified";
    pub const PROVIDER_CONFIG_DELETED: &str = "ProviderConfigDeleted";
    pub const OUTBOUND_APP_CREATED: &str = "OutboundAppCreated";
    pub const OUTBOUND_APP_MODIFIED: &str = "OutboundAppModified";
    pub const OUTBOUND_APP_DELETED: &str = "OutboundAppDeleted";
}

/// The reason a refusal records (`data.error_message` of [`actions::LOGIN_FAILED`]): the
/// error's message as the client reads it, which never holds a secret, bounded; a storage or
/// internal failure only as such (its cause is for the logs).
pub fn failure_reason(error: &Error) -> String {
    match error {
        Error::Storage(_) | Error::Internal(_) => "internal error".to_owned(),
        other => crate::error::bounded_echo(other.to_string(), 256),
    }
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Actor {
    /// Nobody authenticated (a failed key check, a sign-in before the user is known).
    #[default]
    Anonymous,
    /// A management key, by id and name (never its secret).
    ManagementKey { id: String, name: String },
    /// An access key, by id (never its secret): the actor of its own exchange.
    AccessKey { id: String },
    /// A signed-in user, by user id.
    User { id: String },
    /// Whoever an application names as the actor of an event it records (`create_event`).
    External { id: String },
}

impl Actor {
    /// Its stored form: (type, id, name).
    pub fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            Actor::Anonymous => ("", "", ""),
            Actor::ManagementKey { id, name } => ("managementKey", id, name),
            Actor::AccessKey { id } => ("accessKey", id, ""),
            Actor::User { id } => ("user", id, ""),
            Actor::External { id } => ("external", id, ""),
        }
    }

    /// The inverse of [`Actor::parts`]; an unknown type reads as anonymous.
    pub fn from_parts(kind: &str, id: String, name: String) -> Actor {
        match kind {
            "managementKey" => Actor::ManagementKey { id, name },
            "accessKey" => Actor::AccessKey { id },
            "user" => Actor::User { id },
            "external" => Actor::External { id },
            _ => Actor::Anonymous,
        }
    }
}

/// Descope's event types (`create_event`'s `type`).
pub const EVENT_TYPES: [&str; 3] = ["info", "warn", "error"];

/// One audit record, as stored and as answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub project_id: String,
    /// Unix milliseconds.
    pub occurred_ms: i64,
    pub action: String,
    /// `info`, `warn` or `error`.
    pub kind: String,
    pub actor: Actor,
    /// The user acted on (or acting, for sign-ins); empty when none.
    pub user_id: String,
    /// Login ids of that user known at the time (Descope's `externalIds`).
    pub login_ids: Vec<String>,
    pub tenants: Vec<String>,
    /// The client's address (no port): the TCP peer, or behind a trusted reverse proxy the
    /// client it forwarded; empty outside a request.
    pub remote_address: String,
    pub device: String,
    pub method: String,
    pub geo: String,
    /// Small details: provider names, changed fields, counts. Never a secret.
    pub data: Map<String, Value>,
}

impl AuditRecord {
    /// A record of `action` on `project`, with the actor and address of the current request.
    pub fn new(project: &ProjectId, action: &str) -> Self {
        let (actor, remote_address) = current();
        AuditRecord {
            project_id: project.to_string(),
            occurred_ms: 0,
            action: action.to_owned(),
            kind: "info".to_owned(),
            actor,
            user_id: String::new(),
            login_ids: Vec::new(),
            tenants: Vec::new(),
            remote_address,
            device: String::new(),
            method: String::new(),
            geo: String::new(),
            data: Map::new(),
        }
    }

    pub fn user(mut self, user_id: &str) -> Self {
        user_id.clone_into(&mut self.user_id);
        self
    }

    pub fn login_ids(mut self, login_ids: Vec<String>) -> Self {
        self.login_ids = login_ids;
        self
    }

    pub fn tenants(mut self, tenants: Vec<String>) -> Self {
        self.tenants = tenants;
        self
    }

    pub fn kind(mut self, kind: &str) -> Self {
        kind.clone_into(&mut self.kind);
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        method.clone_into(&mut self.method);
        self
    }

    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    pub fn data(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

/// Where records go. `record` must not wait: it runs on the hot paths.
pub trait AuditSink: Send + Sync {
    fn record(&self, record: AuditRecord);
}

/// The services' handle on the trail: stamps the time and hands records to the sink.
#[derive(Clone)]
pub struct Audit {
    sink: Option<Arc<dyn AuditSink>>,
    clock: SharedClock,
}

impl Audit {
    pub fn new(sink: Arc<dyn AuditSink>, clock: SharedClock) -> Self {
        Audit { sink: Some(sink), clock }
    }

    /// Records nothing: for the CLI's offline commands and tools that are not the server.
    pub fn disabled(clock: SharedClock) -> Self {
        Audit { sink: None, clock }
    }

    pub fn record(&self, mut record: AuditRecord) {
        if let Some(sink) = &self.sink {
            record.occurred_ms = self.clock.now_ms();
            sink.record(record);
        }
    }
}

/// The request an audit record is made in: the peer's address, and the actor once the request's
/// credential is checked.
#[derive(Debug, Default)]
pub struct RequestContext {
    remote_address: String,
    actor: std::sync::Mutex<Actor>,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs `fut` (a request) with `remote_address` as the address of every record it makes.
pub async fn scope<F: std::future::Future>(remote_address: String, fut: F) -> F::Output {
    let context = Arc::new(RequestContext { remote_address, actor: Default::default() });
    REQUEST.scope(context, fut).await
}

/// Names the actor of the current request (after its credential was checked). Outside a request
/// scope it does nothing.
pub fn set_actor(actor: Actor) {
    let _ = REQUEST.try_with(|context| {
        *context.actor.lock().unwrap_or_else(|p| p.into_inner()) = actor;
    });
}

/// The actor and address of the current request; anonymous and empty outside one.
pub fn current() -> (Actor, String) {
    REQUEST
        .try_with(|context| {
            let actor = context.actor.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (actor, context.remote_address.clone())
        })
        .unwrap_or_default()
}

/// How far back a search may reach, as Descope's does: 30 days.
pub const SEARCH_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
pub use crate::limits::AUDIT_SEARCH_MAX_LIMIT as MAX_SEARCH_LIMIT;
use crate::limits::{
    MAX_AUDIT_DATA_BYTES, MAX_AUDIT_FIELD_LEN, MAX_FIELD_LEN, MAX_FILTER_VALUES, MAX_SEARCH_TEXT_LEN,
};

/// A search of one project's trail. Empty lists do not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user_ids: Vec<String>,
    pub actions: Vec<String>,
    pub excluded_actions: Vec<String>,
    pub devices: Vec<String>,
    pub methods: Vec<String>,
    pub geos: Vec<String>,
    pub remote_addresses: Vec<String>,
    pub login_ids: Vec<String>,
    pub tenants: Vec<String>,
    /// With `tenants`: records without any tenant match too.
    pub no_tenants: bool,
    /// Case-insensitive substring of any field (action, user id, login ids, tenants, actor,
    /// address, device, method, geo, data).
    pub text: Option<String>,
    /// Inclusive lower bound, Unix ms.
    pub from_ms: i64,
    /// Inclusive upper bound, Unix ms.
    pub to_ms: i64,
    pub limit: usize,
    pub offset: usize,
    /// Oldest first (exports); newest first otherwise (searches, as Descope answers).
    pub oldest_first: bool,
}

/// Searching, creating and purging records (the management API's audit routes and the CLI).
#[derive(Clone)]
pub struct AuditService {
    store: crate::store::SharedStore,
    audit: Audit,
    clock: SharedClock,
}

/// A `create_event` request.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub action: String,
    pub kind: String,
    pub actor_id: String,
    pub tenant_id: String,
    pub user_id: Option<String>,
    pub data: Map<String, Value>,
}

impl AuditService {
    pub fn new(store: crate::store::SharedStore, audit: Audit, clock: SharedClock) -> Self {
        AuditService { store, audit, clock }
    }

    /// Searches the project's trail. The window is clamped to Descope's 30 days: an earlier
    /// `from` (or none) starts 30 days ago; `to` defaults to now.
    pub async fn search(
        &self,
        project: &ProjectId,
        mut query: AuditQuery,
    ) -> Result<(Vec<AuditRecord>, u64)> {
        let now = self.clock.now_ms();
        let earliest = now.saturating_sub(SEARCH_WINDOW_MS);
        query.from_ms = query.from_ms.max(earliest);
        if query.to_ms <= 0 {
            query.to_ms = i64::MAX;
        }
        if query.to_ms < query.from_ms {
            return Err(Error::invalid("to", "must not be before from (or 30 days ago)"));
        }
        if query.limit > MAX_SEARCH_LIMIT {
            return Err(Error::invalid("limit", format!("must be at most {MAX_SEARCH_LIMIT}")));
        }
        if query.limit == 0 {
            query.limit = MAX_SEARCH_LIMIT;
        }
        for (field, values) in [
            ("userIds", &query.user_ids),
            ("actions", &query.actions),
            ("excludedActions", &query.excluded_actions),
            ("devices", &query.devices),
            ("methods", &query.methods),
            ("geos", &query.geos),
            ("remoteAddresses", &query.remote_addresses),
            ("externalIds", &query.login_ids),
            ("tenants", &query.tenants),
        ] {
            if values.len() > MAX_FILTER_VALUES {
                return Err(Error::invalid(field, format!("at most {MAX_FILTER_VALUES} values")));
            }
            if values.iter().any(|v| v.len() > MAX_FIELD_LEN) {
                return Err(Error::invalid(field, format!("values of at most {MAX_FIELD_LEN} bytes")));
            }
        }
        if query.text.as_ref().is_some_and(|t| t.len() > MAX_SEARCH_TEXT_LEN) {
            return Err(Error::invalid("text", format!("at most {MAX_SEARCH_TEXT_LEN} bytes")));
        }
        query.oldest_first = false;
        query.text = query.text.filter(|t| !t.trim().is_empty());
        self.store.search_audit(project, &query).await
    }

    /// Records an event sent by the application (Descope's `create_event`). Like every record it
    /// is written by the background writer, so a search may find it up to a batch interval
    /// later.
    pub async fn create_event(&self, project: &ProjectId, event: NewEvent) -> Result<()> {
        let action = bounded("action", event.action)?;
        if action.is_empty() {
            return Err(Error::MissingArgument("action"));
        }
        if !EVENT_TYPES.contains(&event.kind.as_str()) {
            return Err(Error::invalid("type", "must be info, warn or error"));
        }
        let actor_id = bounded("actorId", event.actor_id)?;
        if actor_id.is_empty() {
            return Err(Error::MissingArgument("actorId"));
        }
        let tenant_id = bounded("tenantId", event.tenant_id)?;
        if tenant_id.is_empty() {
            return Err(Error::MissingArgument("tenantId"));
        }
        let user_id = bounded("userId", event.user_id.unwrap_or_default())?;
        if serde_json::to_vec(&event.data).map_or(true, |d| d.len() > MAX_AUDIT_DATA_BYTES) {
            return Err(Error::invalid(
                "data",
                format!("must be at most {MAX_AUDIT_DATA_BYTES} bytes of JSON"),
            ));
        }
        let mut record =
            AuditRecord::new(project, &action).kind(&event.kind).user(&user_id).tenants(vec![tenant_id]);
        record.data = event.data;
        // The actor is the one the application names (its own user or service); the key that
        // sent the event is kept beside it.
        if let Actor::ManagementKey { id, .. } = &record.actor {
            record.data.insert("managementKeyId".into(), Value::String(id.clone()));
        }
        record.actor = Actor::External { id: actor_id };
        self.audit.record(record);
        Ok(())
    }

    /// Deletes the records older than `retention` (every project). Answers how many.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.store.purge_audit(self.clock.now_ms().saturating_sub(retention_ms)).await
    }
}

fn bounded(field: &'static str, value: String) -> Result<String> {
    if value.len() > MAX_AUDIT_FIELD_LEN || value.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("must be at most {MAX_AUDIT_FIELD_LEN} bytes, printable")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_carries_the_address_and_the_actor() {
        assert_eq!(current(), (Actor::Anonymous, String::new()));
        let seen = scope("192.0.2.1".into(), async {
            set_actor(Actor::ManagementKey { id: "K".into(), name: "ci".into() });
            current()
        })
        .await;
        assert_eq!(seen.0, Actor::ManagementKey { id: "K".into(), name: "ci".into() });
        assert_eq!(seen.1, "192.0.2.1");
        // Outside any scope nothing leaks from the previous one.
        set_actor(Actor::User { id: "U".into() });
        assert_eq!(current(), (Actor::Anonymous, String::new()));
    }

    #[test]
    fn actor_parts_round_trip() {
        for actor in [
            Actor::Anonymous,
            Actor::ManagementKey { id: "K".into(), name: "n".into() },
            Actor::AccessKey { id: "A".into() },
            Actor::User { id: "U".into() },
            Actor::External { id: "E".into() },
        ] {
            let (kind, id, name) = actor.parts();
            assert_eq!(Actor::from_parts(kind, id.to_owned(), name.to_owned()), actor);
        }
    }
}
