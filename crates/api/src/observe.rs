//! What every request leaves behind for operators: a request id (the `x-request-id` header, on
//! every log line of the request), one access-log line, Prometheus counters and a latency
//! histogram per route template, method and status; and the `/metrics` route.
//!
//! Labels and logged routes are route templates (`/v1/mgmt/user/provider/token`), never the requested path, so that
//! no login id, key or token reaches a label, and their number stays bounded. The hot path is a
//! read lock, one hash of the template and a scan of a few entries: the metric handles of a
//! (template, method, status) are made once and kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;

/// Requests answered, by `method`, `route` and `status`.
pub const REQUESTS: &str = "idvault_http_requests_total";
/// Time from the request's arrival to its answer's headers, in seconds, by the same labels.
pub const REQUEST_DURATION: &str = "idvault_http_request_duration_seconds";
/// The `route` label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Renders the metrics registry in Prometheus' text format (the recorder lives in the binary).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The `/metrics` route of the main listener.
#[derive(Clone)]
pub struct MetricsRoute {
    pub render: RenderMetrics,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub token: Option<Arc<SecretString>>,
}

impl std::fmt::Debug for MetricsRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRoute").field("token", &self.token.as_ref().map(|_| "********")).finish()
    }
}

/// `GET /metrics`: the registry, after a bearer-token check when one is configured.
pub async fn metrics_handler(State(route): State<MetricsRoute>, headers: HeaderMap) -> Response {
    if let Some(token) = &route.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "").into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], (route.render)()).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The counter and histogram of one (method, status) of a route.
struct Entry {
    method: Method,
    status: StatusCode,
    count: Counter,
    latency: Histogram,
}

/// Metric handles by route template, made on first use.
#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<Box<str>, Vec<Entry>>>,
}

impl HttpMetrics {
    /// Counts one answered request and records its latency.
    pub fn record(&self, route: Option<&str>, method: &Method, status: StatusCode, seconds: f64) {
        let route = route.unwrap_or(UNMATCHED);
        if let Ok(routes) = self.routes.read() {
            if let Some(entry) =
                routes.get(route).and_then(|e| e.iter().find(|e| e.status == status && e.method == *method))
            {
                entry.count.increment(1);
                entry.latency.record(seconds);
                return;
            }
        }
        let Ok(mut routes) = self.routes.write() else { return };
        let entries = routes.entry(route.into()).or_default();
        if !entries.iter().any(|e| e.status == status && e.method == *method) {
            let labels = [
                ("method", method_label(method).to_owned()),
                ("route", route.to_owned()),
                ("status", status.as_u16().to_string()),
            ];
            entries.push(Entry {
                method: method.clone(),
                status,
                count: metrics::counter!(REQUESTS, &labels),
                latency: metrics::histogram!(REQUEST_DURATION, &labels),
            });
        }
        if let Some(entry) = entries.iter().find(|e| e.status == status && e.method == *method) {
            entry.count.increment(1);
            entry.latency.record(seconds);
        }
    }
}

/// The standard methods by name; any other (a client may send anything) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The request id header, read from the client (a proxy's id is kept) and always answered.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The target of the access-log lines: `IDVAULT_LOG=info,idvault::access=off` silences them alone.
pub const ACCESS_LOG: &str = "idvault::access";

/// An incoming request id is kept when it is short and plain (letters, digits, `-`, `_`, `.`,
/// `:`), so that a client cannot put arbitrary text into the logs; otherwise a new one is made.
fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: a random per-process prefix and a counter, unique without a random number
/// per request.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.finish() & 0xffff_ffff
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 8 hex digits of prefix and 12 of counter, written in place: one allocation, the header's.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 20];
    for (i, digit) in id.iter_mut().enumerate() {
        let nibble = if i < 8 { prefix >> (28 - 4 * i) } else { n >> (44 - 4 * (i - 8)) };
        *digit = HEX[(nibble & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The outermost layer. Gives the request its id and a span (request id, method, route template,
/// and the project once a management key names it: never the path or query, which carry login
/// ids and OAuth codes), writes one access-log line when answered, counts and times it.
pub async fn observe(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match req.headers().get(&REQUEST_ID) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        _ => new_request_id(),
    };
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route_str = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.to_str().unwrap_or_default(),
        method = %method_label(&method),
        route = %route_str,
        project = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics.record(route.as_ref().map(MatchedPath::as_str), &method, status, elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            target: ACCESS_LOG,
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        )
    });
    response.headers_mut().insert(REQUEST_ID.clone(), request_id);
    response
}

/// Names the project in the current request's span (and so in its access-log line), once a
/// management key has been checked.
pub fn record_project(project: &str) {
    tracing::Span::current().record("project", tracing::field::display(project));
}
