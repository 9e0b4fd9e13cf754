//! Per-client rate limit of the unauthenticated auth routes (`/v1/auth/*`): a token bucket per
//! client address, refilled at `per_second` up to `burst`.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are tracked. Buckets that have refilled to
//! the brim carry no information and are dropped when the table fills (at most one sweep per
//! second); if it is still full, addresses not yet tracked share one overflow bucket, so that a
//! flood of fresh addresses is limited as a whole instead of growing the table. IPv6 clients are
//! keyed by their /64 (one host usually owns a whole /64).
//!
//! The address is the TCP peer: behind a reverse proxy every client shares the proxy's bucket,
//! so there the limit must be set at the proxy, or disabled here (`--auth-rate-limit 0`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use idvault_core::error::Code;

use crate::error::ApiError;

/// Most client addresses tracked at once (~64 bytes each).
pub const MAX_TRACKED: usize = 65_536;

/// The path prefix the limit applies to.
pub const LIMITED_PREFIX: &str = "/v1/auth/";

/// The outbound connect routes, limited like the sign-in they mirror: the session-authorised
/// start (both paths) and the public provider callback.
pub const LIMITED_OUTBOUND: &[&str] =
    &["/v1/outbound/oauth/connect", "/v1/outbound/oauth/callback", "/v1/mgmt/outbound/app/connect"];

/// Whether requests to `path` count against the per-address limit.
pub fn is_limited(path: &str) -> bool {
    path.starts_with(LIMITED_PREFIX) || LIMITED_OUTBOUND.contains(&path)
}

/// A rate: `per_second` requests per second, bursts of up to `burst`. Zero in either disables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The default limit of the `/v1/auth/*` routes per client address (`serve
    /// --auth-rate-limit`, `--auth-rate-burst`; documented in docs/api.md's limits).
    pub const AUTH_DEFAULT: RateLimit = RateLimit { per_second: 20, burst: 100 };

    pub fn is_enabled(&self) -> bool {
        self.per_second > 0 && self.burst > 0
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The bucket key: an IPv4 address, or an IPv6 /64; `None` is the shared overflow bucket.
type Key = Option<IpAddr>;

fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

struct Table {
    buckets: HashMap<Key, Bucket>,
    last_sweep: Option<Instant>,
}

/// Token buckets by client address.
pub struct KeyedLimiter {
    rate: f64,
    burst: f64,
    capacity: usize,
    table: Mutex<Table>,
}

impl KeyedLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED)
    }

    fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        KeyedLimiter {
            rate: f64::from(limit.per_second.max(1)),
            burst: f64::from(limit.burst.max(1)),
            capacity: capacity.max(1),
            table: Mutex::new(Table { buckets: HashMap::new(), last_sweep: None }),
        }
    }

    /// Takes one token for `ip` at `now`; on refusal, how long until one is available.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = Some(key_of(ip));
        if !table.buckets.contains_key(&key) && table.buckets.len() >= self.capacity {
            self.sweep(&mut table, now);
            if table.buckets.len() >= self.capacity {
                key = None;
            }
        }
        let full = Bucket { tokens: self.burst, last: now };
        let bucket = table.buckets.entry(key).or_insert(full);
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Drops the buckets that have refilled completely (idle clients), at most once a second.
    fn sweep(&self, table: &mut Table, now: Instant) {
        if table.last_sweep.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        table.last_sweep = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        table.buckets.retain(|key, b| {
            key.is_none() || b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).buckets.len()
    }
}

/// The middleware: limits requests under [`LIMITED_PREFIX`] and to [`LIMITED_OUTBOUND`] by the peer address that the server
/// put in the request (`ConnectInfo`). Without one (in-process tests) nothing is limited.
pub async fn limit_auth_routes(
    State(limiter): State<Arc<KeyedLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if is_limited(req.uri().path()) {
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            if let Err(wait) = limiter.check(peer.ip(), Instant::now()) {
                return too_many(wait);
            }
        }
    }
    next.run(req).await
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = ApiError::new(Code::TooManyRequests, format!("too many requests; retry after {secs} s"))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_and_connect_routes_are_limited_and_management_is_not() {
        for path in [
            "/v1/auth/oauth/callback",
            "/v1/outbound/oauth/callback",
            "/v1/outbound/oauth/connect",
            "/v1/mgmt/outbound/app/connect",
        ] {
            assert!(is_limited(path), "{path}");
        }
        for path in [
            "/v1/mgmt/outbound/app/user/oauthtoken/batch/upload",
            "/v1/mgmt/user",
            "/v1/outbound/oauth/callbackx",
        ] {
            assert!(!is_limited(path), "{path}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refusal_then_refill() {
        let l = KeyedLimiter::new(RateLimit { per_second: 2, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = l.check(ip("10.0.0.1"), t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        // Another client has its own bucket.
        assert!(l.check(ip("10.0.0.2"), t0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(l.check(ip("10.0.0.1"), t0 + Duration::from_millis(500)).is_ok());
        assert!(l.check(ip("10.0.0.1"), t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = KeyedLimiter::new(RateLimit { per_second: 1, burst: 1 });
        let t0 = Instant::now();
        assert!(l.check(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(l.check(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_idle_clients_are_evicted() {
        let l = KeyedLimiter::with_capacity(RateLimit { per_second: 1, burst: 2 }, 4);
        let t0 = Instant::now();
        for i in 0..100u8 {
            let _ = l.check(IpAddr::from([10, 0, 1, i]), t0);
        }
        // Four tracked plus the overflow bucket, which the newcomers share.
        assert!(l.tracked() <= 5, "{}", l.tracked());
        assert!(l.check(IpAddr::from([10, 0, 2, 1]), t0).is_err(), "the overflow bucket is drained");
        // Later every bucket has refilled: idle entries are swept and a new client gets its own.
        let later = t0 + Duration::from_secs(10);
        assert!(l.check(IpAddr::from([10, 0, 3, 1]), later).is_ok());
        assert!(l.check(IpAddr::from([10, 0, 3, 1]), later).is_ok());
        assert!(l.tracked() <= 5);
    }
}
