//! The OpenAPI 3.1 document of the API. Every route is registered together with its
//! `#[utoipa::path]` annotation (`utoipa_axum::routes!`), so the served document and the route
//! table come from the same place; this module holds what the document has beyond the routes:
//! its info, security schemes, tags, and the shared error answers.

use std::collections::{BTreeMap, BTreeSet};

use utoipa::openapi::schema::{AllOfBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The document's fixed part; the paths and their schemas are added by the area routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "idvault",
        description = "A self-hosted, Descope-compatible identity back end with a provider-token vault. \
            Management routes take `Authorization: Bearer <projectId>:<managementKey>`; the auth \
            (sign-in and session) routes take `Authorization: Bearer <projectId>[:<refreshJwt>]`. \
            Every error answer is a Descope error body; see docs/api.md for the codes."
    ),
    modifiers(&Components),
    components(schemas(ErrorBody, Empty)),
    tags(
        (name = "health", description = "Liveness and readiness probes (no auth)."),
        (name = "license", description = "The Python SDK's handshake."),
        (name = "users", description = "User management: create, load, search, change, delete."),
        (name = "provider-tokens", description = "The provider-token vault: read (Descope), store and forget (idvault extensions)."),
        (name = "providers", description = "idvault extension: a project's own OAuth app per provider."),
        (name = "outbound-apps", description = "Outbound apps (Descope's token vault): apps, and the tokens and API keys of users and tenants."),
        (name = "access-keys", description = "Access keys: machine-to-machine credentials, exchanged for session JWTs at `/v1/auth/accesskey/exchange`."),
        (name = "management-keys", description = "idvault extension: create, list, update, expire and revoke the project's management keys."),
        (name = "audit", description = "The audit trail (Descope audit API): search it, and record the application's own events."),
        (name = "tenants", description = "Tenants."),
        (name = "roles", description = "Roles, project-wide or per tenant."),
        (name = "permissions", description = "Permissions."),
        (name = "custom-attributes", description = "Custom attribute definitions of users."),
        (name = "auth", description = "OAuth sign-in, sessions and signing keys (Descope auth API), and their settings."),
    )
)]
pub struct ApiDoc;

/// The answer of a success with nothing to say: an empty JSON object `{}`.
#[derive(ToSchema)]
pub struct Empty {}

/// Security schemes and the shared error responses.
struct Components;

/// Names of the shared error responses in `components.responses`.
const BAD_REQUEST: &str = "BadRequest";
const UNAUTHORIZED: &str = "Unauthorized";
const SESSION_UNAUTHORIZED: &str = "SessionUnauthorized";
const TOO_LARGE: &str = "PayloadTooLarge";
const RATE_LIMITED: &str = "RateLimited";
const INTERNAL: &str = "InternalError";

impl Modify for Components {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "management_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("projectId:managementKey")
                    .description(Some("`Bearer <projectId>:<managementKey>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "project",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("projectId[:refreshJwt]")
                    .description(Some(
                        "`Bearer <projectId>` to start a sign-in, `Bearer <projectId>:<refreshJwt>` for \
                         session calls",
                    ))
                    .build(),
            ),
        );
        for (name, description) in [
            (
                BAD_REQUEST,
                "Bad request: malformed JSON body or query (`E011001`), missing (`E011002`) or invalid \
                 (`E011004`) arguments, or another 400 error of the area (such as `E112102` user not \
                 found)",
            ),
            (UNAUTHORIZED, "Missing, malformed or unknown management key (`E011401`)"),
            (
                SESSION_UNAUTHORIZED,
                "Missing or malformed project bearer or unknown project (`E011401`), invalid or expired \
                 refresh token (`E061001`), or session logged out (`E064001`)",
            ),
            (TOO_LARGE, "Request body too large (`E011413`); the connection is closed"),
            (
                RATE_LIMITED,
                "Too many requests from this client address (`E130429`): over the rate of the auth routes, \
                 or too many wrong management keys or forged session tokens (the brute-force limit); the \
                 `Retry-After` header says in how many seconds to retry",
            ),
            (INTERNAL, "Internal error (`E011500`); the cause is logged, not sent"),
        ] {
            components.responses.insert(name.to_owned(), error_response(description));
        }
    }
}

/// Completes the document once every route has added its schemas, with what a field-by-field
/// schema cannot say: a request that names a user by `loginId` or `userId` needs one of them, and
/// a provider needs a token endpoint from somewhere. Each such schema becomes
/// `allOf: [<fields>, anyOf: [<the ways to satisfy it>]]`.
///
/// Unknown fields of a request body are ignored, as the SDKs send some idvault does not use;
/// like every string of a request they must not hold a NUL character (`crate::extract`), which
/// `additionalProperties` and `propertyNames` say.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    let mut bodies = BTreeSet::new();
    for item in doc.paths.paths.values() {
        let ops = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in ops.into_iter().flatten() {
            let contents = op.request_body.iter().flat_map(|b| b.content.values());
            for schema in contents.filter_map(|c| c.schema.as_ref()) {
                if let RefOr::Ref(r) = schema {
                    bodies.insert(r.ref_location.trim_start_matches("#/components/schemas/").to_owned());
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, schema) in components.schemas.iter_mut() {
        if let (true, RefOr::T(schema)) = (bodies.contains(name), schema) {
            crate::fields::ignore_unknown_fields(schema);
        }
    }
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        let names_user = object.properties.contains_key("loginId")
            && object.properties.contains_key("userId")
            && !object.required.iter().any(|r| r == "loginId" || r == "userId");
        let one_of = if names_user {
            crate::fields::login_or_user_id()
        } else if name == "SetProviderRequest" {
            crate::fields::provider_endpoint_source()
        } else {
            continue;
        };
        let fields = std::mem::take(object);
        *schema = RefOr::T(Schema::AllOf(
            AllOfBuilder::new().item(Schema::Object(fields)).item(Schema::AnyOf(one_of)).build(),
        ));
    }
}

/// A response whose body is the Descope error body.
pub(crate) fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        )
        .build()
        .into()
}

fn refs(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, name)| ((*status).to_owned(), RefOr::Ref(Ref::from_response_name(*name))))
        .collect()
}

/// The errors of every management route: 400, 401, 429 (the brute-force limit of the client
/// address) and 500.
pub struct MgmtErrors;

impl IntoResponses for MgmtErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs(&[("400", BAD_REQUEST), ("401", UNAUTHORIZED), ("429", RATE_LIMITED), ("500", INTERNAL)])
    }
}

/// The errors of the auth routes that take the project bearer: 400, 401, 429 (the per-address
/// rate limit of `/v1/auth/*`, and the brute-force limit) and 500.
pub struct SessionErrors;

impl IntoResponses for SessionErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs(&[("400", BAD_REQUEST), ("401", SESSION_UNAUTHORIZED), ("429", RATE_LIMITED), ("500", INTERNAL)])
    }
}

/// The error of a route that reads a request body: 413.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs(&[("413", TOO_LARGE)])
    }
}

/// The Content-Security-Policy of the `/docs` page: scripts and styles only from the pinned CDN
/// (with subresource integrity in the page) plus the page's one inline script by its hash;
/// Swagger UI's inline styles and data: images; requests ("try it out") to this origin only; no
/// framing, no forms, no base URL. The hash is checked against the page by a unit test.
pub const DOCS_CSP: &str = "default-src 'none'; \
    script-src https://cdn.jsdelivr.net 'sha256-IFZj69oc/iSUByuxJ7an3IkEGL/IadI9tBxVo8cVL9k='; \
    style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page at `/docs`: the document at `/openapi.json` (relative, so that it also works behind a
/// path prefix) rendered by Swagger UI, loaded from a CDN by the browser, pinned to one version
/// with subresource integrity. Nothing is downloaded at build time; without access to the CDN the
/// raw document at `/openapi.json` is the reference.
pub const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>idvault API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui.css"
        integrity="sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I" crossorigin="anonymous">
</head>
<body>
  <noscript>This page needs JavaScript; the raw document is at <a href="openapi.json">openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
          integrity="sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9" crossorigin="anonymous"></script>
  <script>
    window.addEventListener("load", function () {
      window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
    });
  </script>
</body>
</html>
"##;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::Engine;
    use sha2::Digest;

    use super::*;

    #[test]
    fn the_docs_csp_allows_exactly_the_inline_script_of_the_page() {
        let start = DOCS_HTML.find("<script>\n").unwrap() + "<script>".len();
        let end = start + DOCS_HTML[start..].find("</script>").unwrap();
        let digest = sha2::Sha256::digest(&DOCS_HTML.as_bytes()[start..end]);
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        assert!(DOCS_CSP.contains(&format!("'sha256-{hash}'")), "update DOCS_CSP: sha256-{hash}");
        assert_eq!(DOCS_HTML.matches("<script").count(), 2, "one CDN script and one inline script");
        assert!(DOCS_CSP.contains("frame-ancestors 'none'"));
    }
}
