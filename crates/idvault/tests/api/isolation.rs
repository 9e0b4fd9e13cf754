//! Isolation between projects, walked over the whole route table: every management operation of
//! the served OpenAPI document, called with project A's key on project B's users, tenants, roles,
//! permissions, attributes, tokens, providers and outbound apps, answers exactly as it answers
//! for ids that exist nowhere, never shows any of B's data, and changes nothing of B's (B read
//! back with B's key, and exported, identical before and after).
//!
//! The requests come from [`requests`], a map from operation id to requests built from a set of
//! ids. An operation of the document that the map does not know fails the test: a new route must
//! say how it is reached with another project's ids before the suite passes again.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::cli::run_ok;
use crate::helpers::*;

/// The ids of one project's objects that requests refer to. Built for project B from what it
/// stores, and as a "ghost" copy of the same shape that names nothing anywhere.
#[derive(Clone, Debug)]
pub struct Ids {
    pub login: String,
    pub other_login: String,
    pub test_login: String,
    pub user_id: String,
    pub tenant: String,
    pub tenant_role: String,
    pub role: String,
    pub role_id: String,
    pub permission: String,
    pub attribute: String,
    pub sso_app: String,
    pub provider: String,
    pub app: String,
    /// An app of type `apikey`.
    pub key_app: String,
    pub outbound_token: String,
    pub key_id: String,
    /// An access key (machine credential).
    pub access_key: String,
}

impl Ids {
    fn pairs(&self) -> Vec<(&str, &String)> {
        vec![
            ("login", &self.login),
            ("other_login", &self.other_login),
            ("test_login", &self.test_login),
            ("user_id", &self.user_id),
            ("tenant", &self.tenant),
            ("tenant_role", &self.tenant_role),
            ("role", &self.role),
            ("role_id", &self.role_id),
            ("permission", &self.permission),
            ("attribute", &self.attribute),
            ("sso_app", &self.sso_app),
            ("provider", &self.provider),
            ("app", &self.app),
            ("key_app", &self.key_app),
            ("outbound_token", &self.outbound_token),
            ("key_id", &self.key_id),
            ("access_key", &self.access_key),
        ]
    }

    /// The same ids with their first distinctive character changed: same length and format, and
    /// no object anywhere has them.
    fn ghost(&self) -> Ids {
        // Generated ids keep their prefix and length; only their last character changes.
        let flip_last = |s: &str| {
            let mut c: Vec<char> = s.chars().collect();
            let last = c.last_mut().expect("a non-empty id");
            *last = if *last == 'Z' { 'Y' } else { 'Z' };
            c.into_iter().collect::<String>()
        };
        let named = |s: &str| s.replacen("b-", "g-", 1).replacen("b_", "g_", 1);
        Ids {
            login: named(&self.login),
            other_login: named(&self.other_login),
            test_login: named(&self.test_login),
            user_id: flip_last(&self.user_id),
            tenant: named(&self.tenant),
            tenant_role: named(&self.tenant_role),
            role: named(&self.role),
            role_id: flip_last(&self.role_id),
            permission: named(&self.permission),
            attribute: named(&self.attribute),
            sso_app: named(&self.sso_app),
            provider: named(&self.provider),
            app: named(&self.app),
            key_app: named(&self.key_app),
            outbound_token: flip_last(&self.outbound_token),
            key_id: flip_last(&self.key_id),
            access_key: flip_last(&self.access_key),
        }
    }
}

/// One request of an operation: path parameters, query parameters, body.
#[derive(Clone, Debug, Default)]
pub struct Req {
    pub path: Vec<(&'static str, String)>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

fn body(v: Value) -> Req {
    Req { body: Some(v), ..Req::default() }
}

fn query(q: &[(&'static str, &str)]) -> Req {
    Req { query: q.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(), ..Req::default() }
}

/// How an operation reached with another project's ids must answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// It names existing objects: answered exactly as for ghost ids (status and body).
    Lookup,
    /// It creates or replaces in the caller's own namespace: answered as for ghost ids up to the
    /// values a creation generates (ids, times). Run after every lookup (it changes A).
    Own,
    /// It takes no id of another project (lists, settings, the license): sent once.
    NoIds,
}

/// A's own user, which some requests pair with B's objects.
pub const A_LOGIN: &str = "a-own@example.com";

/// The requests of one operation, for the ids `i`. `None`: an operation this map does not know.
pub fn requests(operation: &str, i: &Ids) -> Option<Vec<(Kind, Req)>> {
    use Kind::*;
    let login = i.login.as_str();
    let uid = i.user_id.as_str();
    let user_refs = |extra: Value| {
        let mut by_login = json!({"loginId": login});
        let mut by_id = json!({"userId": uid});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            by_login[&k] = v.clone();
            by_id[&k] = v;
        }
        vec![body(by_login), body(by_id)]
    };
    let roles = json!({"roleNames": [i.role]});
    let tenant_roles = json!({"tenantId": i.tenant, "roleNames": [i.tenant_role]});
    let sso = json!({"ssoAppIds": [i.sso_app]});
    let r = match operation {
        // Users.
        "create_user" | "create_test_user" => (
            Own,
            vec![body(
                json!({"loginId": if operation == "create_user" { login } else { i.test_login.as_str() }}),
            )],
        ),
        "create_users_batch" => (Own, vec![body(json!({"users": [{"loginId": i.other_login}]}))]),
        "load_user" => (Lookup, vec![query(&[("loginId", login)]), query(&[("userId", uid)])]),
        "load_users" | "delete_users_batch" => (Lookup, vec![body(json!({"userIds": [uid]}))]),
        "search_users" | "search_test_users" => (
            Lookup,
            vec![
                body(json!({"loginIds": [login, i.test_login], "withTestUser": true})),
                body(json!({"userIds": [uid]})),
                body(json!({"tenantIds": [i.tenant]})),
                body(json!({"roleNames": [i.role]})),
                body(json!({"text": login})),
                body(json!({"customAttributes": {&i.attribute: "v"}})),
                body(json!({"tenantRoleNames": {&i.tenant: {"values": [i.tenant_role]}}})),
                body(json!({"ssoAppIds": [i.sso_app]})),
            ],
        ),
        "delete_user" | "logout_user" => (Lookup, user_refs(json!({}))),
        "update_user" => (Lookup, vec![body(json!({"loginId": login, "displayName": "From A"}))]),
        "patch_user" => (Lookup, user_refs(json!({"displayName": "From A"}))),
        "patch_users_batch" => {
            (Lookup, vec![body(json!({"users": [{"loginId": login, "displayName": "From A"}]}))])
        }
        "update_status" => (Lookup, user_refs(json!({"status": "disabled"}))),
        "update_login_id" => {
            (Lookup, vec![body(json!({"loginId": login, "newLoginId": "a-renamed@example.com"}))])
        }
        "update_email" => (Lookup, user_refs(json!({"email": "from-a@example.com", "verified": true}))),
        "update_phone" => (Lookup, user_refs(json!({"phone": "+15555550100", "verified": true}))),
        "update_name" => (Lookup, user_refs(json!({"displayName": "From A"}))),
        "update_picture" => (Lookup, user_refs(json!({"picture": "https://a.example/p.png"}))),
        "update_custom_attribute" => (
            Lookup,
            vec![
                body(json!({"loginId": login, "attributeKey": i.attribute, "attributeValue": "v"})),
                body(json!({"loginId": A_LOGIN, "attributeKey": i.attribute, "attributeValue": "v"})),
            ],
        ),
        "add_tenant" | "remove_tenant" => (
            Lookup,
            vec![
                body(json!({"loginId": login, "tenantId": i.tenant})),
                body(json!({"userId": uid, "tenantId": i.tenant})),
                body(json!({"loginId": A_LOGIN, "tenantId": i.tenant})),
            ],
        ),
        "set_roles" | "add_roles" | "add_roles_v2" | "remove_roles" => {
            let mut reqs = user_refs(roles.clone());
            reqs.extend(user_refs(tenant_roles.clone()));
            reqs.push(body(json!({"loginId": A_LOGIN, "roleNames": [i.role]})));
            reqs.push(body(json!({"loginId": A_LOGIN, "tenantId": i.tenant, "roleNames": [i.tenant_role]})));
            (Lookup, reqs)
        }
        "add_sso_apps" | "set_sso_apps" | "remove_sso_apps" => (Lookup, user_refs(sso.clone())),
        "user_history" => (Lookup, vec![body(json!([uid]))]),
        "delete_all_test_users" => (NoIds, vec![Req::default()]),

        // Provider tokens.
        "get_provider_token" => (
            Lookup,
            vec![
                query(&[("loginId", login), ("provider", i.provider.as_str()), ("withRefreshToken", "true")]),
                query(&[("userId", uid), ("provider", i.provider.as_str()), ("withRefreshToken", "true")]),
                query(&[("loginId", A_LOGIN), ("provider", i.provider.as_str())]),
            ],
        ),
        "delete_provider_token" => (
            Lookup,
            vec![
                query(&[("loginId", login), ("provider", i.provider.as_str())]),
                query(&[("userId", uid), ("provider", i.provider.as_str())]),
            ],
        ),
        "put_provider_token" => (
            Lookup,
            vec![
                body(json!({"loginId": login, "provider": i.provider, "accessToken": "from-a"})),
                body(json!({"userId": uid, "provider": i.provider, "accessToken": "from-a"})),
            ],
        ),

        // Providers.
        "set_provider" => {
            (Own, vec![body(json!({"name": i.provider, "preset": "google", "clientId": "a-client"}))])
        }
        "load_provider" => (Lookup, vec![query(&[("name", i.provider.as_str())])]),
        "delete_provider" => (Lookup, vec![body(json!({"name": i.provider}))]),
        "load_all_providers" => (NoIds, vec![Req::default()]),

        // Tenants.
        "create_tenant" => (
            Own,
            vec![body(
                json!({"id": i.tenant, "name": format!("{} in A", i.tenant), "selfProvisioningDomains": []}),
            )],
        ),
        "load_tenant" => (Lookup, vec![query(&[("id", i.tenant.as_str())])]),
        "update_tenant" | "patch_tenant" => (Lookup, vec![body(json!({"id": i.tenant, "name": "From A"}))]),
        "delete_tenant" => (Lookup, vec![body(json!({"id": i.tenant, "cascade": true}))]),
        "search_tenants" => (Lookup, vec![body(json!({"tenantIds": [i.tenant]}))]),
        "load_all_tenants" => (NoIds, vec![Req::default()]),

        // Roles and permissions.
        "create_role" => (Own, vec![body(json!({"name": i.role}))]),
        "update_role" => (
            Lookup,
            vec![
                body(json!({"name": i.role, "newName": "a-renamed-role"})),
                body(json!({"name": i.tenant_role, "tenantId": i.tenant, "newName": "a-renamed-role"})),
            ],
        ),
        "delete_role" => (
            Lookup,
            vec![body(json!({"name": i.role})), body(json!({"name": i.tenant_role, "tenantId": i.tenant}))],
        ),
        "search_roles" => (
            Lookup,
            vec![
                body(json!({"roleNames": [i.role]})),
                body(json!({"roleIds": [i.role_id]})),
                body(json!({"tenantIds": [i.tenant]})),
                body(json!({"permissionNames": [i.permission]})),
            ],
        ),
        "load_all_roles" => (NoIds, vec![Req::default()]),
        "create_permission" => (Own, vec![body(json!({"name": i.permission}))]),
        "update_permission" => {
            (Lookup, vec![body(json!({"name": i.permission, "newName": "a-renamed-perm"}))])
        }
        "delete_permission" => (Lookup, vec![body(json!({"name": i.permission}))]),
        "load_all_permissions" => (NoIds, vec![Req::default()]),

        // Custom attributes.
        "create_custom_attributes" => (
            Own,
            vec![body(json!({"attributes": [{"name": i.attribute, "type": 1, "displayName": "From A"}]}))],
        ),
        "delete_custom_attributes" => (Lookup, vec![body(json!({"names": [i.attribute]}))]),
        "load_custom_attributes" => (NoIds, vec![Req::default()]),

        // Project settings and keys: nothing to name but a key id.
        "load_auth_settings" | "rotate_signing_key" | "get_license" | "list_keys" => {
            (NoIds, vec![Req::default()])
        }
        "set_auth_settings" => (NoIds, vec![body(json!({"redirectUrls": ["https://a.example/cb"]}))]),
        "revoke_key" | "expire_key" => (Lookup, vec![body(json!({"keyId": i.key_id}))]),
        "update_key" => (Lookup, vec![body(json!({"keyId": i.key_id, "name": "renamed by A"}))]),
        "create_key" => (Own, vec![body(json!({"name": "made by A"}))]),

        // Access keys.
        "create_access_key" => (
            Own,
            vec![
                body(json!({"name": "a-machine", "roleNames": [i.role]})),
                body(
                    json!({"name": "a-machine", "keyTenants": [{"tenantId": i.tenant, "roleNames": [i.tenant_role]}]}),
                ),
                body(json!({"name": "a-machine", "userId": uid})),
            ],
        ),
        "load_access_key" => (Lookup, vec![query(&[("id", i.access_key.as_str())])]),
        "activate_access_key" | "deactivate_access_key" | "delete_access_key" | "rotate_access_key" => {
            (Lookup, vec![body(json!({"id": i.access_key}))])
        }
        "activate_access_keys" | "deactivate_access_keys" | "delete_access_keys" => {
            (Lookup, vec![body(json!({"ids": [i.access_key]}))])
        }
        "update_access_key" => (Lookup, vec![body(json!({"id": i.access_key, "name": "renamed by A"}))]),
        "search_access_keys" => {
            (Lookup, vec![body(json!({"tenantIds": [i.tenant]})), body(json!({"boundUserId": uid}))])
        }

        // The audit trail: A's own events may name anything; A's search never finds B's records
        // (the answer would carry B's project id, which no answer may).
        "create_event" => (
            Own,
            vec![body(json!({"action": "b-action", "type": "info", "actorId": login, "tenantId": i.tenant,
                "userId": uid}))],
        ),
        "search" => (NoIds, vec![body(json!({"userIds": [uid]})), body(json!({"tenants": [i.tenant]}))]),

        // Outbound apps and their tokens.
        "create_app" => (Own, vec![body(json!({"id": i.app, "name": format!("{} in A", i.app)}))]),
        "create_app_by_template" => (
            Own,
            vec![body(json!({"templateId": "hubspot", "id": format!("{}-tpl", i.app),
            "overrides": {"name": format!("{} template in A", i.app)}}))],
        ),
        "update_app" => (Lookup, vec![body(json!({"app": {"id": i.app, "name": "From A"}}))]),
        "delete_app" => (Lookup, vec![body(json!({"id": i.app}))]),
        "load_app" => (Lookup, vec![Req { path: vec![("id", i.app.clone())], ..Req::default() }]),
        "load_all_apps" => (NoIds, vec![Req::default()]),
        "apps_with_user_token" => (
            Lookup,
            vec![query(&[("userId", uid)]), query(&[("userId", uid), ("tenantId", i.tenant.as_str())])],
        ),
        "delete_token" => (Lookup, vec![query(&[("id", i.outbound_token.as_str())])]),
        "delete_user_tokens" => (
            Lookup,
            vec![
                query(&[("appId", i.app.as_str()), ("userId", uid)]),
                query(&[("userId", uid)]),
                query(&[("appId", i.app.as_str())]),
            ],
        ),
        // The "latest" fetches take no scopes (the SDKs send none).
        "fetch_user_token" | "fetch_latest_user_token" => {
            let scopes = if operation == "fetch_user_token" { json!(["b-scope"]) } else { Value::Null };
            let mut by_scopes = json!({"appId": i.app, "userId": uid, "scopes": scopes});
            if scopes.is_null() {
                by_scopes.as_object_mut().unwrap().remove("scopes");
            }
            (
                Lookup,
                vec![body(by_scopes), body(json!({"appId": i.app, "userId": uid, "tenantId": i.tenant}))],
            )
        }
        "fetch_tenant_token" => {
            (Lookup, vec![body(json!({"appId": i.app, "tenantId": i.tenant, "scopes": ["b-scope"]}))])
        }
        "fetch_latest_tenant_token" => (Lookup, vec![body(json!({"appId": i.app, "tenantId": i.tenant}))]),
        "upload_user_token" => (
            Lookup,
            vec![
                body(json!({"appId": i.app, "userId": uid, "accessToken": "from-a", "scopes": ["b-scope"]})),
                body(json!({"appId": i.app, "userId": uid, "tenantId": i.tenant, "accessToken": "from-a"})),
            ],
        ),
        "upload_tenant_token" => {
            (Lookup, vec![body(json!({"appId": i.app, "tenantId": i.tenant, "accessToken": "from-a"}))])
        }
        "upload_user_api_key" => {
            (Lookup, vec![body(json!({"appId": i.key_app, "userId": uid, "apiKey": "from-a"}))])
        }
        "upload_tenant_api_key" => {
            (Lookup, vec![body(json!({"appId": i.key_app, "tenantId": i.tenant, "apiKey": "from-a"}))])
        }
        "batch_upload_user_tokens" => (
            Lookup,
            vec![body(json!({"tokens": [{"appId": i.app, "userId": uid, "accessToken": "from-a"},
                {"appId": i.app, "userId": uid, "tenantId": i.tenant, "accessToken": "from-a"}]}))],
        ),
        "batch_upload_tenant_tokens" => (
            Lookup,
            vec![body(json!({"tokens": [{"appId": i.app, "tenantId": i.tenant, "accessToken": "from-a"}]}))],
        ),
        _ => return None,
    };
    let (kind, reqs) = r;
    let mut all: Vec<(Kind, Req)> = reqs.into_iter().map(|r| (kind, r)).collect();
    // Creations in A that refer to B's objects: refused as for ghost ones. Sent with the lookups,
    // before A creates objects of the same names.
    let references = match operation {
        "create_user" | "create_test_user" => vec![
            body(json!({"loginId": "a-new-1", "roleNames": [i.role]})),
            body(json!({"loginId": "a-new-2", "userTenants": [{"tenantId": i.tenant}]})),
            body(json!({"loginId": "a-new-3", "customAttributes": {&i.attribute: "v"}})),
        ],
        "create_users_batch" => vec![body(
            json!({"users": [{"loginId": "a-new-4", "userTenants": [{"tenantId": i.tenant, "roleNames": [i.tenant_role]}]}]}),
        )],
        "create_role" => vec![
            body(json!({"name": i.tenant_role, "tenantId": i.tenant})),
            body(json!({"name": "a-role-1", "permissionNames": [i.permission]})),
        ],
        _ => vec![],
    };
    all.extend(references.into_iter().map(|r| (Lookup, r)));
    Some(all)
}

/// One operation of the served document.
#[derive(Clone, Debug)]
pub struct Operation {
    pub id: String,
    pub method: Method,
    pub path: String,
    pub security: Vec<String>,
    /// Whether the document declares a request body.
    pub has_body: bool,
}

/// Every operation of the server's `/openapi.json`.
pub async fn served_operations(base_url: &str) -> Vec<Operation> {
    let doc: Value = reqwest::get(format!("{base_url}/openapi.json")).await.unwrap().json().await.unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let security = op["security"]
                .as_array()
                .map(|reqs| reqs.iter().flat_map(|r| r.as_object().unwrap().keys().cloned()).collect())
                .unwrap_or_default();
            let id =
                op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let has_body = op.get("requestBody").is_some();
            ops.push(Operation { id: id.to_owned(), method, path: path.clone(), security, has_body });
        }
    }
    ops
}

/// The operations a management key calls (the walk of both this test and the limits test).
pub async fn management_operations(base_url: &str) -> Vec<Operation> {
    let all = served_operations(base_url).await;
    // A route under /v1/mgmt/ authenticated otherwise must be a known exception: the outbound
    // connect at Descope's management path takes a user's session, not a management key.
    for op in &all {
        if op.path.starts_with("/v1/mgmt/") && !op.security.iter().any(|s| s == "management_key") {
            assert_eq!(
                op.id, "connect_mgmt",
                "{} {} is under /v1/mgmt/ without the management key",
                op.method, op.path
            );
        }
    }
    all.into_iter().filter(|op| op.security.iter().any(|s| s == "management_key")).collect()
}

/// An answer: status, and body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("non-JSON body ({}): {:?}", self.status, self.text))
    }
}

pub async fn call(api: &Api, op: &Operation, req: &Req) -> Answer {
    let mut path = op.path.clone();
    for (name, value) in &req.path {
        path = path.replace(&format!("{{{name}}}"), &urlencode(value));
    }
    assert!(!path.contains('{'), "{}: path parameters left in {path}", op.id);
    if !req.query.is_empty() {
        let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        path = format!("{path}?{}", q.join("&"));
    }
    let mut builder = api
        .http
        .request(op.method.clone(), format!("{}{path}", api.base_url))
        .header("Authorization", &api.auth);
    if let Some(b) = &req.body {
        builder = builder.json(b);
    }
    let resp = builder.send().await.unwrap_or_else(|e| panic!("{} {path}: {e}", op.id));
    let status = resp.status().as_u16();
    Answer { status, text: resp.text().await.unwrap() }
}

/// The text with every ghost id replaced by B's (longest first, so that no id is cut).
fn as_if_b(text: &str, b: &Ids, ghost: &Ids) -> String {
    let mut pairs: Vec<(&String, &String)> =
        ghost.pairs().into_iter().zip(b.pairs()).map(|((_, g), (_, b))| (g, b)).collect();
    pairs.sort_by_key(|(g, _)| std::cmp::Reverse(g.len()));
    let mut out = text.to_owned();
    for (g, b) in pairs {
        out = out.replace(g.as_str(), b);
    }
    out
}

/// Values of B that no request of A ever sends: none may appear in any answer to A.
const B_PRIVATE: &[&str] = &[
    "Bee Private Name",
    "bee.private@example.com",
    "B Tenant Private",
    "b-private.example",
    "b role private",
    "b permission private",
    "B Attribute Private",
    "b-client-private",
    "b-secret-private",
    "B App Private",
    "b-app-client-private",
    "b-access-private",
    "b-refresh-private",
    "b-outbound-private",
    "b-apikey-private",
    "B Machine Private",
    "b-tenant-token-private",
    "B Keys Private",
    "https://b-private.example/cb",
];

/// Seeds a project (through its key) with one object of every kind and answers their ids.
pub async fn seed(b: &Api) -> Ids {
    let ok = |r: Resp, what: &str| {
        assert_eq!(r.status, 200, "seeding B, {what}: {}", r.body);
        r.body
    };
    ok(
        b.post(
            "/v1/mgmt/user/customattribute/create",
            json!({"attributes": [{"name": "b_attr", "type": 1, "displayName": "B Attribute Private"}]}),
        )
        .await,
        "attribute",
    );
    ok(
        b.post(
            "/v1/mgmt/permission/create",
            json!({"name": "b-perm", "description": "b permission private"}),
        )
        .await,
        "permission",
    );
    ok(
        b.post(
            "/v1/mgmt/role/create",
            json!({"name": "b-role", "description": "b role private", "permissionNames": ["b-perm"]}),
        )
        .await,
        "role",
    );
    ok(
        b.post(
            "/v1/mgmt/tenant/create",
            json!({"id": "b-tenant", "name": "B Tenant Private", "selfProvisioningDomains": ["b-private.example"]}),
        )
        .await,
        "tenant",
    );
    ok(
        b.post("/v1/mgmt/role/create", json!({"name": "b-trole", "tenantId": "b-tenant"})).await,
        "tenant role",
    );
    let user = b
        .create_user(json!({"loginId": "b-user@example.com", "displayName": "Bee Private Name",
            "email": "bee.private@example.com", "roleNames": ["b-role"],
            "userTenants": [{"tenantId": "b-tenant", "roleNames": ["b-trole"]}],
            "customAttributes": {"b_attr": "private"}, "ssoAppIds": ["b-sso"]}))
        .await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    b.create_user(json!({"loginId": "b-other@example.com"})).await;
    ok(b.post("/v1/mgmt/user/create/test", json!({"loginId": "b-test@example.com"})).await, "test user");
    ok(
        b.post(
            "/v1/mgmt/provider/set",
            json!({"name": "b-idp", "preset": "google", "clientId": "b-client-private", "clientSecret": "b-secret-private"}),
        )
        .await,
        "provider",
    );
    let mut token = google_token("b-user@example.com", "b-access-private", "b-refresh-private");
    token["provider"] = json!("b-idp");
    ok(b.put_token(token).await, "provider token");
    ok(
        b.post(
            "/v1/mgmt/outbound/app/create",
            json!({"id": "b-app", "name": "B App Private", "clientId": "b-app-client-private"}),
        )
        .await,
        "outbound app",
    );
    ok(
        b.post(
            "/v1/mgmt/outbound/app/user/oauthtoken/upload",
            json!({"appId": "b-app", "userId": user_id, "accessToken": "b-outbound-private", "scopes": ["b-scope"],
                "accessTokenExpiry": 4102444800i64}),
        )
        .await,
        "outbound user token",
    );
    ok(
        b.post(
            "/v1/mgmt/outbound/app/tenant/oauthtoken/upload",
            json!({"appId": "b-app", "tenantId": "b-tenant", "accessToken": "b-tenant-token-private"}),
        )
        .await,
        "outbound tenant token",
    );
    ok(
        b.post(
            "/v1/mgmt/outbound/app/create",
            json!({"id": "b-keys", "name": "B Keys Private", "appType": "apikey"}),
        )
        .await,
        "API-key app",
    );
    ok(
        b.post(
            "/v1/mgmt/outbound/app/tenant/apikey/upload",
            json!({"appId": "b-keys", "tenantId": "b-tenant", "apiKey": "b-apikey-private"}),
        )
        .await,
        "outbound tenant key",
    );
    ok(
        b.post("/v1/mgmt/auth/settings", json!({"redirectUrls": ["https://b-private.example/cb"]})).await,
        "settings",
    );
    let fetched = ok(
        b.post(
            "/v1/mgmt/outbound/app/user/token",
            json!({"appId": "b-app", "userId": user_id, "scopes": ["b-scope"]}),
        )
        .await,
        "outbound token",
    );
    let roles = ok(b.get("/v1/mgmt/role/all").await, "roles");
    let role_id = roles["roles"].as_array().unwrap().iter().find(|r| r["name"] == "b-role").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let access_key = ok(
        b.post(
            "/v1/mgmt/accesskey/create",
            json!({"name": "B Machine Private", "roleNames": ["b-role"],
                "keyTenants": [{"tenantId": "b-tenant", "roleNames": ["b-trole"]}]}),
        )
        .await,
        "access key",
    )["key"]["id"]
        .as_str()
        .expect("the access key has an id")
        .to_owned();
    let key_id =
        b.auth.split(':').nth(1).unwrap().strip_prefix("idv_").unwrap().split('.').next().unwrap().to_owned();
    Ids {
        login: "b-user@example.com".into(),
        other_login: "b-other@example.com".into(),
        test_login: "b-test@example.com".into(),
        user_id,
        tenant: "b-tenant".into(),
        tenant_role: "b-trole".into(),
        role: "b-role".into(),
        role_id,
        permission: "b-perm".into(),
        attribute: "b_attr".into(),
        sso_app: "b-sso".into(),
        provider: "b-idp".into(),
        app: "b-app".into(),
        key_app: "b-keys".into(),
        outbound_token: fetched["token"]["id"].as_str().expect("the token has an id").to_owned(),
        key_id,
        access_key,
    }
}

/// Everything of B, read with B's key.
async fn read_back(b: &Api, base_url: &str, project: &str, i: &Ids) -> Value {
    let mut out = Map::new();
    let mut get = |name: &str, r: Resp| {
        out.insert(name.to_owned(), json!({"status": r.status, "body": r.body}));
    };
    get("users", b.post("/v2/mgmt/user/search", json!({"withTestUser": true, "limit": 1000})).await);
    get("loaded", b.post("/v1/mgmt/users/load", json!({"userIds": [i.user_id]})).await);
    get("history", b.post("/v1/mgmt/user/history", json!([i.user_id])).await);
    get("provider token", b.get_token(&i.login, &i.provider, true).await);
    get("tenants", b.get("/v1/mgmt/tenant/all").await);
    get("roles", b.get("/v1/mgmt/role/all").await);
    get("permissions", b.get("/v1/mgmt/permission/all").await);
    get("attributes", b.get("/v1/mgmt/user/customattributes").await);
    get("providers", b.get("/v1/mgmt/provider/all").await);
    get("apps", b.get("/v1/mgmt/outbound/apps").await);
    get("app", b.get(&format!("/v1/mgmt/outbound/app/{}", i.app)).await);
    get(
        "outbound user token",
        b.post(
            "/v1/mgmt/outbound/app/user/token",
            json!({"appId": i.app, "userId": i.user_id, "scopes": ["b-scope"]}),
        )
        .await,
    );
    get(
        "outbound tenant key",
        b.post(
            "/v1/mgmt/outbound/app/tenant/token/latest",
            json!({"appId": i.key_app, "tenantId": i.tenant}),
        )
        .await,
    );
    get(
        "outbound tenant token",
        b.post("/v1/mgmt/outbound/app/tenant/token/latest", json!({"appId": i.app, "tenantId": i.tenant}))
            .await,
    );
    get(
        "apps with token",
        b.get(&format!("/v1/mgmt/outbound/apps-with-user-token?userId={}", i.user_id)).await,
    );
    get("settings", b.get("/v1/mgmt/auth/settings").await);
    get("keys", b.get("/v1/mgmt/managementkey/list").await);
    get("access key", b.get(&format!("/v1/mgmt/accesskey?id={}", i.access_key)).await);
    get("access keys", b.post("/v1/mgmt/accesskey/search", json!({})).await);
    let jwks: Value =
        reqwest::get(format!("{base_url}/v2/keys/{project}")).await.unwrap().json().await.unwrap();
    out.insert("signing keys".into(), jwks);
    Value::Object(out)
}

/// The export of project B (every stored row, sealed secrets included), line by line.
fn export(app: &TestApp, project: &str, name: &str) -> Vec<String> {
    let file = app.dir.path().join(name);
    run_ok(&app.server.data_dir, &["export", "--project", project, "--out", file.to_str().unwrap()]);
    std::fs::read_to_string(file).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_management_route_treats_another_projects_objects_as_absent_and_changes_none() {
    let app = TestApp::spawn();
    let b_project = app.server.project_id.clone().unwrap();
    let b = &app.api;
    let a_project = run_ok(&app.server.data_dir, &["project", "create", "--name", "A"]).trim().to_owned();
    let a_key = run_ok(&app.server.data_dir, &["key", "create", "--project", &a_project, "--name", "a"])
        .trim()
        .to_owned();
    let a = Api::new(&app.server.base_url, &a_project, &a_key);
    a.create_user(json!({"loginId": A_LOGIN})).await;

    let ids = seed(b).await;
    let ghost = ids.ghost();
    let before = read_back(b, &app.server.base_url, &b_project, &ids).await;
    let exported_before = export(&app, &b_project, "before.jsonl");
    // Every private value is there to be leaked (the client secret is never answered, even to B).
    for marker in B_PRIVATE.iter().filter(|m| **m != "b-secret-private") {
        assert!(before.to_string().contains(marker), "B's read-back holds {marker}");
    }

    let ops = management_operations(&app.server.base_url).await;
    let unmapped: Vec<String> = ops
        .iter()
        .filter(|op| requests(&op.id, &ids).is_none())
        .map(|op| format!("{} {} ({})", op.method, op.path, op.id))
        .collect();
    assert!(
        unmapped.is_empty(),
        "operations without an isolation case: add them to isolation::requests, saying which of B's ids \
         they are called with: {unmapped:#?}"
    );

    let mut sent = 0;
    let mut seen_ops = BTreeSet::new();
    for phase in [Kind::Lookup, Kind::NoIds, Kind::Own] {
        for op in &ops {
            let reqs = requests(&op.id, &ids).unwrap();
            let ghost_reqs = requests(&op.id, &ghost).unwrap();
            for ((kind, req), (_, ghost_req)) in reqs.iter().zip(&ghost_reqs) {
                if *kind != phase {
                    continue;
                }
                seen_ops.insert(op.id.clone());
                let on_b = call(&a, op, req).await;
                sent += 1;
                let what = format!("{} {} {:?} {:?} {:?}", op.method, op.path, req.path, req.query, req.body);
                assert!(on_b.status < 500, "{what}: {} {}", on_b.status, on_b.text);
                for marker in B_PRIVATE {
                    assert!(
                        !on_b.text.contains(marker),
                        "{what}: A's answer shows B's {marker:?}: {}",
                        on_b.text
                    );
                }
                assert!(
                    !on_b.text.contains(&b_project),
                    "{what}: A's answer names B's project: {}",
                    on_b.text
                );
                if *kind == Kind::NoIds {
                    assert!(on_b.status < 300, "{what}: {} {}", on_b.status, on_b.text);
                    continue;
                }
                let on_ghost = call(&a, op, ghost_req).await;
                sent += 1;
                let ghost_text = as_if_b(&on_ghost.text, &ids, &ghost);
                assert_eq!(
                    on_b.status, on_ghost.status,
                    "{what}: B's ids answer {} {}, ghost ids {} {}",
                    on_b.status, on_b.text, on_ghost.status, on_ghost.text
                );
                let (got, expected) = (on_b.json(), serde_json::from_str::<Value>(&ghost_text).unwrap());
                // A creation answers what it created with generated ids and times, or the whole
                // list, which the first creation changed: compared only when refused.
                if *kind == Kind::Lookup || on_b.status >= 400 {
                    assert_eq!(got, expected, "{what}: B's ids and ghost ids answer differently");
                }
                if on_b.status >= 400 {
                    let code = got["errorCode"].as_str().unwrap_or_default().to_owned();
                    Resp { status: on_b.status, body: got }.assert_error(on_b.status, &code);
                }
            }
        }
    }
    assert_eq!(seen_ops.len(), ops.len());

    let after = read_back(b, &app.server.base_url, &b_project, &ids).await;
    assert_eq!(before, after, "B read back with B's key changed");
    let exported_after = export(&app, &b_project, "after.jsonl");
    assert_eq!(exported_before, exported_after, "B's export changed");
    println!(
        "isolation ({}): {} management operations walked, {sent} requests sent with A's key; B unchanged ({} exported lines)",
        if postgres_mode() { "postgres" } else { "sqlite" },
        ops.len(),
        exported_after.len()
    );
}
