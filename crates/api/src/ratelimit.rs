//! Per-client-address limits, both token buckets per address ([`KeyedLimiter`]):
//!
//! - the rate of the unauthenticated auth routes (`/v1/auth/*`, outbound connect): every request
//!   takes a token, refilled at `per_second` up to `burst` ([`limit_auth_routes`]);
//! - the brute-force limit ([`FailureLimiter`], [`limit_failed_credentials`]): only a wrong
//!   management key or a forged session token takes a token; once an address's bucket is empty,
//!   its requests that carry credentials are refused (429) before any check, until a token has
//!   refilled. Good requests take nothing, and another address's failures never touch them.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are tracked. Buckets that have refilled to
//! the brim carry no information and are dropped when the table fills (at most one sweep per
//! second). If it is still full, addresses not yet tracked share one overflow bucket on the auth
//! routes, so that a flood of fresh addresses is limited as a whole instead of growing the table;
//! their failures are not counted at all by the brute-force limit, whose shared bucket would
//! otherwise let an attacker with many addresses lock out every good client. IPv6 clients are
//! keyed by their /64 (one host usually owns a whole /64).
//!
//! The address is the client's in `ConnectInfo`: the TCP peer, or, when the peer is a trusted
//! reverse proxy (`--trusted-proxies`), the client it forwarded ([`crate::proxy`]). Behind a proxy
//! that is not listed, every client shares the proxy's bucket: list it, or set the limits at the
//! proxy and disable them here (`--auth-rate-limit 0`, `--credential-failure-limit 0`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use idvault_core::error::Code;

use crate::error::{ApiError, FailedCredential};

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

/// The brute-force limit: failed credentials (wrong management keys, forged session tokens) per
/// client address, refilled at `per_minute` up to `burst`. Zero in either disables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl FailureLimit {
    /// The default (`serve --credential-failure-limit`, `--credential-failure-burst`): ten wrong
    /// credentials at once, then one every 6 s. Enough for a person fixing a mistyped key or an
    /// SDK retrying a few times; a key guesser gets 14,400 tries a day, against 256-bit keys.
    pub const DEFAULT: FailureLimit = FailureLimit { per_minute: 10, burst: 10 };

    pub fn is_enabled(&self) -> bool {
        self.per_minute > 0 && self.burst > 0
    }
}

/// What a full table does with an address it does not track yet.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Overflow {
    /// It shares one bucket with every other untracked address.
    Shared,
    /// It is not limited.
    Untracked,
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
    /// Tokens per second.
    rate: f64,
    burst: f64,
    capacity: usize,
    overflow: Overflow,
    table: Mutex<Table>,
}

impl KeyedLimiter {
    /// The auth routes' limiter: a full table shares an overflow bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED)
    }

    fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        Self::build(f64::from(limit.per_second.max(1)), limit.burst, capacity, Overflow::Shared)
    }

    fn build(rate: f64, burst: u32, capacity: usize, overflow: Overflow) -> Self {
        KeyedLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            capacity: capacity.max(1),
            overflow,
            table: Mutex::new(Table { buckets: HashMap::new(), last_sweep: None }),
        }
    }

    /// Takes one token for `ip` at `now`; on refusal, how long until one is available.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.take(ip, now).map(|_| ())
    }

    /// Takes one token for `ip` at `now`. Taken: `Some(wait)` if that was the last one (how long
    /// until the next is available), `None` if some are left or `ip` is not tracked. Refused:
    /// how long until one is available.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<Option<Duration>, Duration> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = Some(key_of(ip));
        if !table.buckets.contains_key(&key) && table.buckets.len() >= self.capacity {
            self.sweep(&mut table, now);
            if table.buckets.len() >= self.capacity {
                match self.overflow {
                    Overflow::Shared => key = None,
                    Overflow::Untracked => return Ok(None),
                }
            }
        }
        let full = Bucket { tokens: self.burst, last: now };
        let bucket = table.buckets.entry(key).or_insert(full);
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        let until_one = |tokens: f64| Duration::from_secs_f64((1.0 - tokens) / self.rate);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok((bucket.tokens < 1.0).then(|| until_one(bucket.tokens)))
        } else {
            Err(until_one(bucket.tokens))
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

/// The brute-force limit: a [`KeyedLimiter`] of failures, and the addresses whose bucket is empty
/// with the time it refills a token.
///
/// Good requests only ever look at `blocked_len`: while no address is blocked, the check is one
/// atomic load, with no lock. While some are, a lookup in the (small) blocked table.
pub struct FailureLimiter {
    failures: KeyedLimiter,
    blocked: Mutex<Blocked>,
    /// `blocked.until.len()`, readable without the lock.
    blocked_len: AtomicUsize,
}

struct Blocked {
    until: HashMap<IpAddr, Instant>,
    last_sweep: Option<Instant>,
}

impl FailureLimiter {
    pub fn new(limit: FailureLimit) -> Self {
        Self::with_capacity(limit, MAX_TRACKED)
    }

    fn with_capacity(limit: FailureLimit, capacity: usize) -> Self {
        let per_second = f64::from(limit.per_minute.max(1)) / 60.0;
        FailureLimiter {
            failures: KeyedLimiter::build(per_second, limit.burst, capacity, Overflow::Untracked),
            blocked: Mutex::new(Blocked { until: HashMap::new(), last_sweep: None }),
            blocked_len: AtomicUsize::new(0),
        }
    }

    /// How much longer requests from `ip` are refused, if they are.
    pub fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.blocked_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        // Expired entries go at most once a second, so that the table empties (and the check
        // goes back to the lock-free load) once an attack has stopped.
        if blocked.last_sweep.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
            blocked.last_sweep = Some(now);
            blocked.until.retain(|_, until| *until > now);
            self.blocked_len.store(blocked.until.len(), Ordering::Relaxed);
        }
        let until = *blocked.until.get(&key_of(ip))?;
        (until > now).then(|| until - now)
    }

    /// Counts one failed credential from `ip`; blocks it if that emptied its bucket.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        // Refused: failures that passed the check together with the one that emptied the bucket.
        let (Ok(Some(wait)) | Err(wait)) = self.failures.take(ip, now) else {
            return;
        };
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.until.insert(key_of(ip), now + wait);
        self.blocked_len.store(blocked.until.len(), Ordering::Relaxed);
    }
}

/// The brute-force middleware. A request that carries credentials (an `Authorization` header)
/// from an address that is blocked is refused with 429 before any check; an answer that reports
/// a credential this server never issued ([`FailedCredential`]) counts against its address.
/// Without a peer address (in-process tests) nothing is limited.
pub async fn limit_failed_credentials(
    State(limiter): State<Arc<FailureLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    if req.headers().contains_key(header::AUTHORIZATION) {
        if let Some(wait) = limiter.blocked_for(peer.ip(), Instant::now()) {
            let secs = whole_seconds(wait);
            return too_many(
                secs,
                format!("too many wrong credentials from this address; retry after {secs} s"),
            );
        }
    }
    let resp = next.run(req).await;
    if resp.extensions().get::<FailedCredential>().is_some() {
        limiter.record_failure(peer.ip(), Instant::now());
    }
    resp
}

/// The middleware: limits requests under [`LIMITED_PREFIX`] and to [`LIMITED_OUTBOUND`] by the
/// client address that the server put in the request (`ConnectInfo`). Without one (in-process tests) nothing is limited.
pub async fn limit_auth_routes(
    State(limiter): State<Arc<KeyedLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if is_limited(req.uri().path()) {
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            if let Err(wait) = limiter.check(peer.ip(), Instant::now()) {
                let secs = whole_seconds(wait);
                return too_many(secs, format!("too many requests; retry after {secs} s"));
            }
        }
    }
    next.run(req).await
}

/// A wait in whole seconds for `Retry-After`, rounded up (waiting less would be refused again), at
/// least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn too_many(secs: u64, message: String) -> Response {
    let mut resp = ApiError::new(Code::TooManyRequests, message).into_response();
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

    #[test]
    fn failures_block_an_address_after_its_burst_until_a_token_refills() {
        // 60 a minute: one a second.
        let l = FailureLimiter::new(FailureLimit { per_minute: 60, burst: 3 });
        let t0 = Instant::now();
        let bad = ip("10.0.0.1");
        assert_eq!(l.blocked_for(bad, t0), None, "nothing is blocked before any failure");
        for _ in 0..2 {
            l.record_failure(bad, t0);
            assert_eq!(l.blocked_for(bad, t0), None, "within the burst");
        }
        l.record_failure(bad, t0);
        let wait = l.blocked_for(bad, t0).expect("the third failure empties the bucket");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        // Another address is not affected.
        assert_eq!(l.blocked_for(ip("10.0.0.2"), t0), None);
        // Once a token has refilled the address may try again; one more failure blocks it again.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(l.blocked_for(bad, later), None);
        l.record_failure(bad, later);
        assert!(l.blocked_for(bad, later).is_some());
        // A whole burst refills after burst / rate.
        let much_later = later + Duration::from_secs(3);
        assert_eq!(l.blocked_for(bad, much_later), None);
        for _ in 0..2 {
            l.record_failure(bad, much_later);
        }
        assert_eq!(l.blocked_for(bad, much_later), None);
    }

    #[test]
    fn expired_blocks_are_swept_so_the_check_is_lock_free_again() {
        let l = FailureLimiter::new(FailureLimit { per_minute: 60, burst: 1 });
        let t0 = Instant::now();
        l.record_failure(ip("10.0.0.1"), t0);
        l.record_failure(ip("10.0.0.2"), t0);
        assert_eq!(l.blocked_len.load(Ordering::Relaxed), 2);
        assert_eq!(l.blocked_for(ip("10.0.0.3"), t0 + Duration::from_secs(2)), None);
        assert_eq!(l.blocked_len.load(Ordering::Relaxed), 0, "the expired blocks are gone");
    }

    #[test]
    fn a_full_failure_table_leaves_new_addresses_unlimited_rather_than_sharing_a_bucket() {
        let l = FailureLimiter::with_capacity(FailureLimit { per_minute: 1, burst: 1 }, 4);
        let t0 = Instant::now();
        for i in 0..4u8 {
            l.record_failure(IpAddr::from([10, 0, 1, i]), t0);
        }
        // The table is full of blocked addresses; fresh addresses failing are not tracked...
        for i in 0..100u8 {
            l.record_failure(IpAddr::from([10, 0, 2, i]), t0);
        }
        assert!(l.failures.tracked() <= 4, "{}", l.failures.tracked());
        // ... so none of them, and no good newcomer, is blocked by the others' failures.
        assert_eq!(l.blocked_for(IpAddr::from([10, 0, 2, 7]), t0), None);
        assert_eq!(l.blocked_for(IpAddr::from([10, 0, 3, 1]), t0), None);
        assert!(l.blocked_for(IpAddr::from([10, 0, 1, 0]), t0).is_some());
    }
}
