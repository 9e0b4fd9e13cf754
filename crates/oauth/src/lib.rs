//! idvault-oauth: outbound calls to OAuth/OIDC providers (RFC 6749 refresh and code exchange,
//! OIDC discovery, id_token verification, userinfo).
//!
//! - One pooled reqwest client (rustls), so connections to a provider are reused.
//! - A timeout on every call (connect and whole exchange).
//! - A bound on concurrent calls per project and provider host, so one slow provider cannot take
//!   every connection or task, and one project cannot starve another's calls to the same
//!   provider; waiting for a slot counts against the same timeout.
//! - The SSRF policy of `idvault_core::provider::address` on every call: the URL is checked
//!   before sending (IP-literal hosts never reach a resolver), and host names are checked again
//!   when resolved ([`PolicyResolver`]), so a name that rebinds to a private address is refused at
//!   connect time. Redirects are not followed.
//! - A cap on response size; JSON and form-encoded token answers (GitHub without
//!   `Accept: application/json`) are both understood.
//!
//! Every failure maps to a [`ProviderFailure`]; secrets never appear in errors or logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use idvault_core::error::{Error, ProviderFailure};
use idvault_core::ids::ProjectId;
use idvault_core::provider::address::{check_url, host_for_log, AllowedHosts, UrlKind};
use idvault_core::provider::{
    ClientAuthMethod, DiscoveredEndpoints, IdTokenCheck, OAuthClient, TokenEndpoint, TokenGrant, UrlParam,
};

/// How long a provider's JWKS is trusted before it is fetched again (an unknown `kid` refetches
/// at once).
const JWKS_TTL: Duration = Duration::from_secs(300);

/// What a caller sees when a provider address is refused or cannot be reached: the same words
/// for both, so the answer does not tell what listens where.
const NOT_REACHED: &str = "its address is not allowed or it could not be reached";

/// Outbound tuning.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Whole-call timeout, including the wait for a concurrency slot.
    pub timeout: Duration,
    /// Concurrent calls per project and provider host.
    pub max_concurrent_per_provider: usize,
    /// Largest provider answer read, in bytes.
    pub max_response_bytes: usize,
    /// Non-public hosts and networks providers may use (`--provider-allowed-hosts`).
    pub allowed_hosts: AllowedHosts,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            timeout: Duration::from_secs(10),
            max_concurrent_per_provider: 32,
            max_response_bytes: 256 * 1024,
            allowed_hosts: AllowedHosts::none(),
        }
    }
}

pub struct HttpOAuthClient {
    http: reqwest::Client,
    settings: OAuthSettings,
    /// Concurrency slots by (project, host:port).
    slots: Mutex<HashMap<(ProjectId, String), Arc<Semaphore>>>,
    /// Provider JWKS by URL, with when they were fetched.
    jwks: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

impl std::fmt::Debug for HttpOAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOAuthClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A token endpoint answer, success or error, in either encoding. Unknown fields are ignored.
#[derive(Deserialize, Default)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<i64>,
    scope: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
}

/// `expires_in` is a number in JSON and a string in form encoding (and some providers send a
/// string in JSON too).
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(i64),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        None => None,
        Some(N::Int(i)) => Some(i),
        Some(N::Float(f)) => Some(f as i64),
        Some(N::Text(s)) => s.trim().parse().ok(),
    })
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
}

/// Resolves host names and keeps only the addresses the SSRF policy permits for that name; none
/// left is an error, so the connection is never attempted. Checked at connect time, this also
/// holds against a name that resolved to a public address when it was configured and rebinds
/// to a private one later.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    allowed: AllowedHosts,
}

impl PolicyResolver {
    pub fn new(allowed: AllowedHosts) -> Self {
        PolicyResolver { allowed }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> =
                all.iter().copied().filter(|a| allowed.permits_resolved(&host, a.ip())).collect();
            if permitted.len() < all.len() {
                let refused: Vec<String> = all
                    .iter()
                    .filter(|a| !allowed.permits_resolved(&host, a.ip()))
                    .map(|a| a.ip().to_string())
                    .collect();
                tracing::warn!(%host, refused = %refused.join(","), "provider host resolves to non-public addresses; those are not used");
            }
            if permitted.is_empty() {
                return Err(format!("{host} resolves to no allowed address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

impl HttpOAuthClient {
    pub fn new(settings: OAuthSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver::new(settings.allowed_hosts.clone())))
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("idvault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(HttpOAuthClient {
            http,
            settings,
            slots: Mutex::new(HashMap::new()),
            jwks: Mutex::new(HashMap::new()),
        })
    }

    fn slots_for(&self, project: &ProjectId, url: &str) -> Arc<Semaphore> {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}:{:?}", u.port())))
            .unwrap_or_default();
        let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((project.clone(), host))
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_concurrent_per_provider)))
            .clone()
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.settings.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The SSRF policy, before anything is sent (IP-literal hosts skip the resolver).
    fn check(&self, project: &ProjectId, url: &str, kind: UrlKind) -> Result<(), ProviderFailure> {
        check_url(url, kind, &self.settings.allowed_hosts).map(|_| ()).map_err(|why| {
            tracing::warn!(%project, host = %host_for_log(url), %why, "provider URL refused");
            ProviderFailure::Network(NOT_REACHED.into())
        })
    }

    /// Sends a request with the URL policy, the concurrency bound and overall timeout, and reads
    /// a bounded body.
    async fn exchange(
        &self,
        project: &ProjectId,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String, Vec<u8>), ProviderFailure> {
        self.check(project, url, UrlKind::Endpoint)?;
        let slots = self.slots_for(project, url);
        let call = async {
            let _permit =
                slots.acquire().await.map_err(|_| ProviderFailure::Network("client shutting down".into()))?;
            let mut response = request.send().await.map_err(|e| {
                // The detail (refused by the resolver, connection refused, TLS...) is for the log.
                let e = e.without_url();
                tracing::debug!(%project, host = %host_for_log(url), error = ?e, "provider call failed");
                map_reqwest_error(e, self.timeout_ms())
            })?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let too_large = || {
                ProviderFailure::BadResponse(format!(
                    "answer larger than {} bytes",
                    self.settings.max_response_bytes
                ))
            };
            // A declared length over the cap is refused before any of the body is read; an
            // undeclared or understated one is cut off by the count below. Either way the
            // connection is dropped with the rest unread.
            if response.content_length().is_some_and(|n| n > self.settings.max_response_bytes as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) =
                response.chunk().await.map_err(|e| map_reqwest_error(e, self.timeout_ms()))?
            {
                if body.len() + chunk.len() > self.settings.max_response_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, content_type, body))
        };
        tokio::time::timeout(self.settings.timeout, call)
            .await
            .map_err(|_| ProviderFailure::Timeout(self.timeout_ms()))?
    }

    /// A token endpoint call with client authentication per the provider's method.
    async fn token_request(
        &self,
        endpoint: &TokenEndpoint<'_>,
        mut form: Vec<(&str, &str)>,
    ) -> Result<TokenGrant, ProviderFailure> {
        let mut request = self.http.post(endpoint.url).header(ACCEPT, "application/json");
        match (endpoint.auth_method, endpoint.client_secret) {
            (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 section 2.3.1: both parts form-urlencoded before Basic encoding.
                request = request
                    .basic_auth(form_encode(endpoint.client_id), Some(form_encode(secret.expose_secret())));
            }
            (_, secret) => {
                form.push(("client_id", endpoint.client_id));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose_secret()));
                }
            }
        }
        add_extra_params(&mut form, endpoint.extra_params);
        let body = serde_urlencoded::to_string(&form)
            .map_err(|_| ProviderFailure::BadResponse("encoding the request".into()))?;
        let request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        let (status, content_type, bytes) = self.exchange(endpoint.project, endpoint.url, request).await?;
        grant_from(status, &content_type, &bytes)
    }

    /// A provider JWKS, cached; `refetch` forces a new fetch (unknown `kid`).
    async fn jwks(
        &self,
        project: &ProjectId,
        url: &str,
        refetch: bool,
    ) -> Result<Arc<JwkSet>, ProviderFailure> {
        if !refetch {
            let cached = self.jwks.lock().unwrap_or_else(|p| p.into_inner()).get(url).cloned();
            if let Some((at, set)) = cached {
                if at.elapsed() < JWKS_TTL {
                    return Ok(set);
                }
            }
        }
        let request = self.http.get(url).header(ACCEPT, "application/json");
        let (status, _, body) = self.exchange(project, url, request).await?;
        if status != 200 {
            return Err(ProviderFailure::Unavailable(status));
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|_| ProviderFailure::BadResponse("JWKS is not valid".into()))?;
        let set = Arc::new(set);
        self.jwks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url.to_owned(), (Instant::now(), set.clone()));
        Ok(set)
    }
}

/// Parses a token endpoint answer (HTTP status, `Content-Type`, body) into a grant, mapping
/// OAuth errors. Public for the fuzz targets: this is what a provider's bytes first meet.
pub fn grant_from(status: u16, content_type: &str, bytes: &[u8]) -> Result<TokenGrant, ProviderFailure> {
    if status >= 500 {
        return Err(ProviderFailure::Unavailable(status));
    }
    let answer = parse_token_answer(content_type, bytes);
    if !(200..300).contains(&status) {
        return match answer {
            Ok(TokenAnswer { error: Some(code), .. }) => Err(oauth_error(&code)),
            _ => Err(ProviderFailure::Unavailable(status)),
        };
    }
    let answer = answer?;
    if let Some(code) = answer.error {
        return Err(oauth_error(&code));
    }
    let access_token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderFailure::BadResponse("token answer has no access_token".into()))?;
    Ok(TokenGrant {
        access_token: SecretString::from(access_token),
        refresh_token: answer.refresh_token.filter(|t| !t.is_empty()).map(SecretString::from),
        expires_in: answer.expires_in.filter(|s| *s > 0),
        scope: answer.scope,
        id_token: answer.id_token.filter(|t| !t.is_empty()),
    })
}

fn map_reqwest_error(e: reqwest::Error, timeout_ms: u64) -> ProviderFailure {
    if e.is_timeout() {
        ProviderFailure::Timeout(timeout_ms)
    } else if e.is_connect() {
        // A refusal by the resolver is a connect error too: one answer for both.
        ProviderFailure::Network(NOT_REACHED.into())
    } else {
        // Secrets travel in bodies and headers, never in the URL; drop the URL anyway.
        ProviderFailure::Network(e.without_url().to_string())
    }
}

fn parse_token_answer(content_type: &str, body: &[u8]) -> Result<TokenAnswer, ProviderFailure> {
    let looks_json =
        content_type.contains("json") || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if looks_json {
        serde_json::from_slice(body)
            .map_err(|_| ProviderFailure::BadResponse("token answer is not valid JSON".into()))
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|_| ProviderFailure::BadResponse("token answer is neither JSON nor form-encoded".into()))
    }
}

/// Maps an OAuth `error` code. GitHub says `bad_refresh_token` where the RFC says
/// `invalid_grant`.
fn oauth_error(code: &str) -> ProviderFailure {
    match code {
        "invalid_grant" | "bad_refresh_token" => ProviderFailure::InvalidGrant,
        other => ProviderFailure::OAuth { error: other.chars().take(64).collect() },
    }
}

/// The header of an id_token, refused unless it names an asymmetric algorithm: `none` and HMAC
/// (keyed with the client secret) are refused. Public for the fuzz targets.
pub fn id_token_header(id_token: &str) -> idvault_core::Result<jsonwebtoken::Header> {
    use jsonwebtoken::Algorithm;
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| Error::InvalidIdToken("malformed id_token".into()))?;
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !allowed.contains(&header.alg) {
        return Err(Error::InvalidIdToken(format!("algorithm {:?} is not accepted", header.alg)));
    }
    Ok(header)
}

/// The claims of an id_token signed with `alg` by `key`: the signature, `exp` (a minute of
/// leeway), `iss`, `aud`, `sub` and the sign-in's `nonce` are checked. Public for the fuzz
/// targets, which sign arbitrary claims with a key of their own.
pub fn id_token_claims(
    id_token: &str,
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::DecodingKey,
    check: &IdTokenCheck<'_>,
) -> idvault_core::Result<Map<String, Value>> {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.leeway = 60;
    validation.set_audience(&[check.client_id]);
    validation.set_issuer(&[check.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, key, &validation)
        .map_err(|e| id_token_error(&e))?
        .claims;
    if claims.get("nonce").and_then(Value::as_str) != Some(check.nonce) {
        return Err(Error::InvalidIdToken("wrong or missing nonce".into()));
    }
    Ok(claims)
}

fn id_token_error(e: &jsonwebtoken::errors::Error) -> Error {
    use jsonwebtoken::errors::ErrorKind;
    let why = match e.kind() {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "invalid",
    };
    Error::InvalidIdToken(why.into())
}

#[async_trait]
impl OAuthClient for HttpOAuthClient {
    async fn refresh(
        &self,
        endpoint: &TokenEndpoint<'_>,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, ProviderFailure> {
        let form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        self.token_request(endpoint, form).await
    }

    fn allowed_hosts(&self) -> &AllowedHosts {
        &self.settings.allowed_hosts
    }

    async fn discover(
        &self,
        project: &ProjectId,
        issuer: &str,
    ) -> Result<DiscoveredEndpoints, ProviderFailure> {
        // An issuer with `?` or `#` would make the discovery URL any path of any host.
        self.check(project, issuer, UrlKind::Issuer)?;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let request = self.http.get(&url).header(ACCEPT, "application/json");
        let (status, _, body) = self.exchange(project, &url, request).await?;
        if status != 200 {
            return Err(ProviderFailure::Unavailable(status));
        }
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|_| ProviderFailure::BadResponse("discovery document is not valid JSON".into()))?;
        if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(ProviderFailure::BadResponse("discovery document names another issuer".into()));
        }
        Ok(DiscoveredEndpoints {
            issuer: doc.issuer,
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            userinfo_endpoint: doc.userinfo_endpoint,
            jwks_uri: doc.jwks_uri,
        })
    }

    async fn exchange_code(
        &self,
        endpoint: &TokenEndpoint<'_>,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenGrant, ProviderFailure> {
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        self.token_request(endpoint, form).await
    }

    async fn verify_id_token(
        &self,
        id_token: &str,
        check: &IdTokenCheck<'_>,
    ) -> idvault_core::Result<Map<String, Value>> {
        let header = id_token_header(id_token)?;
        let fail = |f: ProviderFailure| Error::InvalidIdToken(format!("fetching the provider's keys: {f}"));
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&*self.jwks(check.project, check.jwks_uri, false).await.map_err(fail)?) {
            Some(k) => k,
            None => find(&*self.jwks(check.project, check.jwks_uri, true).await.map_err(fail)?).ok_or_else(
                || Error::InvalidIdToken("signed by a key the provider does not publish".into()),
            )?,
        };
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk)
            .map_err(|_| Error::InvalidIdToken("unusable provider key".into()))?;
        id_token_claims(id_token, header.alg, &key, check)
    }

    async fn get_json(
        &self,
        project: &ProjectId,
        url: &str,
        access_token: &SecretString,
    ) -> Result<Value, ProviderFailure> {
        let request =
            self.http.get(url).header(ACCEPT, "application/json").bearer_auth(access_token.expose_secret());
        let (status, _, body) = self.exchange(project, url, request).await?;
        if status >= 500 {
            return Err(ProviderFailure::Unavailable(status));
        }
        if !(200..300).contains(&status) {
            return Err(ProviderFailure::OAuth {
                error: format!("HTTP {status} from the userinfo endpoint"),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|_| ProviderFailure::BadResponse("answer is not valid JSON".into()))
    }
}

/// Adds an app's extra token parameters to a token request's form, except those naming a
/// parameter the form already has (the grant, the client authentication): configuration may add
/// to a request, never change what it asks for or who asks.
fn add_extra_params<'a>(form: &mut Vec<(&'a str, &'a str)>, extra: &'a [UrlParam]) {
    const RESERVED: &[&str] = &[
        "grant_type",
        "refresh_token",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
    ];
    for p in extra {
        if !RESERVED.contains(&p.key.as_str()) && !form.iter().any(|(k, _)| *k == p.key) {
            form.push((p.key.as_str(), p.value.as_str()));
        }
    }
}

fn form_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e.trim_start_matches('=').to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_form_answers() {
        let a = parse_token_answer(
            "application/json",
            br#"{"access_token":"a","expires_in":3600,"scope":"x y"}"#,
        )
        .unwrap();
        assert_eq!((a.access_token.as_deref(), a.expires_in), (Some("a"), Some(3600)));
        let f = parse_token_answer(
            "application/x-www-form-urlencoded",
            b"access_token=gho_1&scope=repo&token_type=bearer",
        )
        .unwrap();
        assert_eq!(f.access_token.as_deref(), Some("gho_1"));
        let s = parse_token_answer("text/plain", b"access_token=x&expires_in=28800&refresh_token=r").unwrap();
        assert_eq!(s.expires_in, Some(28800));
        assert!(parse_token_answer("application/json", b"<html>").is_err());
        assert_eq!(oauth_error("invalid_grant"), ProviderFailure::InvalidGrant);
        assert_eq!(oauth_error("bad_refresh_token"), ProviderFailure::InvalidGrant);
        assert!(matches!(oauth_error("invalid_client"), ProviderFailure::OAuth { .. }));
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }

    #[test]
    fn extra_token_params_add_to_the_form_but_never_replace_it() {
        let extra = [
            UrlParam { key: "resource".into(), value: "https://api.example.com".into() },
            UrlParam { key: "grant_type".into(), value: "authorization_code".into() },
            UrlParam { key: "client_secret".into(), value: "x".into() },
        ];
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", "r")];
        add_extra_params(&mut form, &extra);
        assert_eq!(
            form,
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", "r"),
                ("resource", "https://api.example.com")
            ]
        );
    }

    fn project(id: &str) -> ProjectId {
        ProjectId::parse(id).unwrap()
    }

    /// A local server answering `{"ok":true}` at every path; returns its base URL.
    async fn local_server() -> String {
        let app = axum::Router::new().fallback(|| async { axum::Json(serde_json::json!({"ok": true})) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn client(allowed: &str, slots: usize) -> HttpOAuthClient {
        HttpOAuthClient::new(OAuthSettings {
            timeout: Duration::from_millis(1500),
            max_concurrent_per_provider: slots,
            allowed_hosts: AllowedHosts::parse(allowed).unwrap(),
            ..OAuthSettings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_non_public_addresses() {
        use reqwest::dns::Resolve;
        // `localhost` resolves to loopback (from /etc/hosts): as if a public-looking name had been
        // rebound to 127.0.0.1 after the URL check passed.
        let strict = PolicyResolver::new(AllowedHosts::none());
        let refused = strict.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err(), "a name resolving only to loopback is refused at connect time");

        let loopback = PolicyResolver::new(AllowedHosts::parse("127.0.0.1").unwrap());
        let addrs: Vec<SocketAddr> = loopback.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip() == std::net::IpAddr::from([127, 0, 0, 1])), "{addrs:?}");

        let by_name = PolicyResolver::new(AllowedHosts::parse("localhost").unwrap());
        assert!(
            by_name.resolve("localhost".parse().unwrap()).await.is_ok(),
            "an allowed name may be private"
        );
    }

    #[tokio::test]
    async fn the_http_client_refuses_at_connect_time_and_before_sending() {
        let base = local_server().await;
        let port = base.rsplit(':').next().unwrap().to_owned();
        let token = SecretString::from("t".to_owned());
        let p = project("Pa");

        // The resolver inside reqwest: a request to a name that resolves to loopback is never
        // connected, even when nothing else checked the URL.
        let strict = client("", 4);
        let e = strict.http.get(format!("http://localhost:{port}/x")).send().await.unwrap_err();
        assert!(e.is_connect(), "{e:?}");

        // Every call checks the URL first: IP literals, in any spelling, never reach the network.
        for url in [
            format!("{base}/x"),
            format!("http://2130706433:{port}/x"),
            format!("http://[::ffff:127.0.0.1]:{port}/x"),
            format!("https://127.0.0.1:{port}/x"),
            format!("http://localhost:{port}/x"),
            "https://169.254.169.254/latest/meta-data/".to_owned(),
        ] {
            let failure = strict.get_json(&p, &url, &token).await.unwrap_err();
            assert_eq!(failure, ProviderFailure::Network(NOT_REACHED.into()), "{url}");
        }
        assert!(strict.discover(&p, &format!("{base}/?")).await.is_err());

        // Allowed: the same server answers.
        let open = client("127.0.0.1", 4);
        assert_eq!(open.get_json(&p, &format!("{base}/x"), &token).await.unwrap()["ok"], true);
        assert_eq!(
            open.get_json(&p, &format!("http://2130706433:{port}/x"), &token).await.unwrap()["ok"],
            true
        );
        // An unreachable allowed address answers the same words as a refused one.
        let closed = open.get_json(&p, "http://127.0.0.1:9/x", &token).await.unwrap_err();
        assert_eq!(closed, ProviderFailure::Network(NOT_REACHED.into()));
    }

    #[tokio::test]
    async fn one_project_holding_every_slot_of_a_host_does_not_block_another() {
        let base = local_server().await;
        let url = format!("{base}/token");
        let token = SecretString::from("t".to_owned());
        let oauth = client("127.0.0.1", 2);
        let (a, b) = (project("Pa"), project("Pb"));

        // Project A holds both slots for this host (as two hung calls would).
        let slots = oauth.slots_for(&a, &url);
        let _held = slots.clone().acquire_many_owned(2).await.unwrap();

        // Project B's call goes through at once.
        let started = Instant::now();
        assert_eq!(oauth.get_json(&b, &url, &token).await.unwrap()["ok"], true);
        assert!(started.elapsed() < Duration::from_millis(1000));

        // Project A's next call waits for a slot and times out.
        assert_eq!(oauth.get_json(&a, &url, &token).await.unwrap_err(), ProviderFailure::Timeout(1500));
    }
}
