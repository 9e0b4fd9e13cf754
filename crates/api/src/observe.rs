//! What every request leaves behind for operators: Prometheus counters and a latency histogram per
//! route template, method and status, and the `/metrics` route.
//!
//! Labels are route templates (`/v1/mgmt/user/provider/token`), never the requested path, so that
//! no login id, key or token reaches a label, and their number stays bounded. The hot path is a
//! read lock, one hash of the template and a scan of a few entries: the metric handles of a
//! (template, method, status) are made once and kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use secrecy::{ExposeSecret, SecretString};

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

/// The outermost layer: times the request and records it under its route template.
pub async fn observe(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let status = response.status();
    metrics.record(route.as_ref().map(MatchedPath::as_str), &method, status, started.elapsed().as_secs_f64());
    response
}
