//! The policy of refresh calls to a provider, per (project, provider), so that one provider that
//! hangs or fails cannot take the refresh capacity of the others:
//! - a bound on concurrent refresh calls (a bulkhead). It is taken before the cross-replica
//!   refresh lock, which on PostgreSQL holds a connection of a shared pool for the whole call:
//!   a hung provider holds at most its own slots, never every lock connection;
//! - a circuit breaker. After `failure_threshold` consecutive failures (timeout, 5xx, an unusable
//!   answer, unreachable) it opens: refreshes fail at once with [`ProviderFailure::Suspended`],
//!   without calling the provider. After `cooldown` it half-opens and lets one call through as a
//!   probe; the probe's success closes it, its failure opens it for another cool-down. An OAuth
//!   error answer (`invalid_grant`, `invalid_client`) is the provider working, not failing.
//!
//! The state lives in this process: each replica has its own breakers, opened by the failures it
//! saw itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ProviderFailure, Result};
use crate::ids::{ProjectId, ProviderName};
use crate::provider::TokenGrant;

/// Tuning of [`ProviderGuards`].
#[derive(Debug, Clone, Copy)]
pub struct ProviderGuardSettings {
    /// Concurrent refresh calls per project and provider.
    pub max_concurrent_refreshes: usize,
    /// How long a refresh waits for one of those slots before failing as a timeout.
    pub slot_wait: Duration,
    /// Consecutive failures that open the breaker; 0 never opens it.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub cooldown: Duration,
}

impl Default for ProviderGuardSettings {
    fn default() -> Self {
        ProviderGuardSettings {
            // Below the smallest PostgreSQL lock pool (8): one hung provider leaves at least half
            // of the lock connections to the others.
            max_concurrent_refreshes: 4,
            slot_wait: Duration::from_secs(10),
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// What a breaker does with calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// The cool-down ended: one call goes through as a probe, the others fail at once.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "halfOpen",
        }
    }
}

/// A change of state worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    Opened,
    Reopened,
    Closed,
}

/// The breaker's state machine, with time passed in (so that it is tested without waiting).
#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    /// Set while open or half-open: when the cool-down ends.
    open_until: Option<Instant>,
    /// Half-open and a probe is out.
    probe_out: bool,
}

/// Why a call was refused.
#[derive(Debug)]
struct Refused {
    failures: u32,
    retry_in: Duration,
}

impl Breaker {
    fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Lets a call through (answering whether it is the probe) or refuses it.
    fn admit(&mut self, now: Instant) -> std::result::Result<bool, Refused> {
        let refused = |b: &Breaker, retry_in| Refused { failures: b.consecutive_failures, retry_in };
        match self.state(now) {
            BreakerState::Closed => Ok(false),
            BreakerState::Open => Err(refused(self, self.open_until.map(|u| u - now).unwrap_or_default())),
            BreakerState::HalfOpen if self.probe_out => Err(refused(self, Duration::ZERO)),
            BreakerState::HalfOpen => {
                self.probe_out = true;
                Ok(true)
            }
        }
    }

    /// The provider answered: any answer closes the breaker.
    fn succeeded(&mut self) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.probe_out = false;
        self.open_until.take().map(|_| Transition::Closed)
    }

    fn failed(
        &mut self,
        probe: bool,
        now: Instant,
        threshold: u32,
        cooldown: Duration,
    ) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if probe {
            self.probe_out = false;
            self.open_until = Some(now + cooldown);
            return Some(Transition::Reopened);
        }
        // A call let through before the breaker opened, failing late, changes nothing more.
        if self.open_until.is_none() && threshold > 0 && self.consecutive_failures >= threshold {
            self.open_until = Some(now + cooldown);
            return Some(Transition::Opened);
        }
        None
    }

    /// A probe that ended without an answer (its caller went away, or it timed out waiting for
    /// a slot): the next call may probe.
    fn probe_abandoned(&mut self) {
        self.probe_out = false;
    }
}

/// The guard of one (project, provider).
struct Guard {
    /// The token endpoint the breaker judged: a provider pointed elsewhere starts afresh.
    token_url: String,
    slots: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
}

impl Guard {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A breaker's state, for the readiness probe.
#[derive(Debug, Clone)]
pub struct BreakerReport {
    pub project: ProjectId,
    pub provider: ProviderName,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Open: when a probe will be let through.
    pub retry_in: Duration,
    pub refreshes_in_flight: usize,
}

/// The guards of every (project, provider) this process has refreshed with.
pub struct ProviderGuards {
    settings: ProviderGuardSettings,
    guards: Mutex<HashMap<(ProjectId, ProviderName), Arc<Guard>>>,
}

/// Leave to call a provider: holds a concurrency slot, and reports the call's outcome to the
/// breaker with [`ProviderPass::record`]. Dropped without an outcome (nothing was asked of the
/// provider, or the caller went away), it leaves the breaker as it was.
pub struct ProviderPass {
    guard: Arc<Guard>,
    project: ProjectId,
    provider: ProviderName,
    probe: bool,
    recorded: bool,
    settings: ProviderGuardSettings,
    _slot: OwnedSemaphorePermit,
}

impl ProviderGuards {
    pub fn new(settings: ProviderGuardSettings) -> Self {
        ProviderGuards { settings, guards: Mutex::default() }
    }

    fn guard_for(&self, project: &ProjectId, provider: &ProviderName, token_url: &str) -> Arc<Guard> {
        let mut map = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let key = (project.clone(), provider.clone());
        if let Some(existing) = map.get(&key) {
            if existing.token_url == token_url {
                return existing.clone();
            }
        }
        if map.len() >= 4096 {
            // Forget idle, healthy guards (deleted providers, long unused ones).
            let max = self.settings.max_concurrent_refreshes.max(1);
            map.retain(|_, g| g.slots.available_permits() < max || g.breaker().open_until.is_some());
        }
        let guard = Arc::new(Guard {
            token_url: token_url.to_owned(),
            slots: Arc::new(Semaphore::new(self.settings.max_concurrent_refreshes.max(1))),
            breaker: Mutex::default(),
        });
        map.insert(key, guard.clone());
        guard
    }

    /// Asks to call `provider` at `token_url`: refused at once while its breaker is open, else
    /// waits for a concurrency slot (at most `slot_wait`).
    pub async fn enter(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        token_url: &str,
    ) -> Result<ProviderPass> {
        let guard = self.guard_for(project, provider, token_url);
        let admitted = guard.breaker().admit(Instant::now());
        let probe = match admitted {
            Ok(probe) => probe,
            Err(Refused { failures, retry_in }) => {
                tracing::debug!(%project, %provider, "provider circuit open; refresh refused without a call");
                return Err(Error::Provider {
                    provider: provider.to_string(),
                    failure: ProviderFailure::Suspended {
                        failures,
                        retry_in_secs: retry_in.as_secs_f64().ceil() as u64,
                    },
                });
            }
        };
        if probe {
            tracing::info!(%project, %provider, "provider circuit half-open: letting one refresh through as a probe");
        }
        // From here the pass exists only once the slot is held; a probe that gives up waiting
        // must hand the probe back.
        let slot = tokio::time::timeout(self.settings.slot_wait, guard.slots.clone().acquire_owned()).await;
        let slot = match slot {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) | Err(_) => {
                if probe {
                    guard.breaker().probe_abandoned();
                }
                tracing::warn!(%project, %provider, "every refresh slot of this provider stayed busy; refresh not attempted");
                let ms = u64::try_from(self.settings.slot_wait.as_millis()).unwrap_or(u64::MAX);
                return Err(Error::Provider {
                    provider: provider.to_string(),
                    failure: ProviderFailure::Timeout(ms),
                });
            }
        };
        Ok(ProviderPass {
            guard,
            project: project.clone(),
            provider: provider.clone(),
            probe,
            recorded: false,
            settings: self.settings,
            _slot: slot,
        })
    }

    /// Every breaker that is not closed.
    pub fn report(&self) -> Vec<BreakerReport> {
        let now = Instant::now();
        let max = self.settings.max_concurrent_refreshes.max(1);
        let map = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<BreakerReport> = map
            .iter()
            .filter_map(|((project, provider), guard)| {
                let b = guard.breaker();
                let state = b.state(now);
                (state != BreakerState::Closed).then(|| BreakerReport {
                    project: project.clone(),
                    provider: provider.clone(),
                    state,
                    consecutive_failures: b.consecutive_failures,
                    retry_in: b.open_until.map(|u| u.saturating_duration_since(now)).unwrap_or_default(),
                    refreshes_in_flight: max.saturating_sub(guard.slots.available_permits()),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (a.project.as_str(), a.provider.as_str()).cmp(&(b.project.as_str(), b.provider.as_str()))
        });
        out
    }
}

impl ProviderPass {
    /// Reports what the provider answered.
    pub fn record(mut self, outcome: &std::result::Result<TokenGrant, ProviderFailure>) {
        self.recorded = true;
        let failure = match outcome {
            Err(f) if f.is_provider_fault() => Some(f),
            _ => None,
        };
        let (project, provider) = (&self.project, &self.provider);
        let mut breaker = self.guard.breaker();
        let transition = match failure {
            None => breaker.succeeded(),
            Some(_) => breaker.failed(
                self.probe,
                Instant::now(),
                self.settings.failure_threshold,
                self.settings.cooldown,
            ),
        };
        let failures = breaker.consecutive_failures;
        drop(breaker);
        let cooldown_s = self.settings.cooldown.as_secs_f64();
        match (transition, failure) {
            (Some(Transition::Opened), Some(last)) => tracing::warn!(
                %project, %provider, failures, cooldown_s, last_failure = %last,
                "provider circuit opened: refreshes fail at once without calling it until a probe succeeds"
            ),
            (Some(Transition::Reopened), Some(last)) => tracing::warn!(
                %project, %provider, failures, cooldown_s, last_failure = %last,
                "provider circuit probe failed; open again"
            ),
            (Some(Transition::Closed), _) => {
                tracing::warn!(%project, %provider, "provider circuit closed: the provider answers again")
            }
            _ => {}
        }
    }
}

impl Drop for ProviderPass {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.guard.breaker().probe_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_threshold_consecutive_failures_and_success_resets_the_count() {
        let mut b = Breaker::default();
        let t = Instant::now();
        assert_eq!(b.failed(false, t, 3, COOL), None);
        assert_eq!(b.failed(false, t, 3, COOL), None);
        assert_eq!(b.succeeded(), None, "a success in between starts the count again");
        assert_eq!(b.failed(false, t, 3, COOL), None);
        assert_eq!(b.failed(false, t, 3, COOL), None);
        assert_eq!(b.state(t), BreakerState::Closed);
        assert_eq!(b.failed(false, t, 3, COOL), Some(Transition::Opened));
        assert_eq!(b.state(t), BreakerState::Open);
        let refused = b.admit(t + Duration::from_secs(10)).err().unwrap();
        assert_eq!((refused.failures, refused.retry_in), (3, Duration::from_secs(20)));
        // A late failure of a call let through earlier does not extend the cool-down.
        assert_eq!(b.failed(false, t + Duration::from_secs(5), 3, COOL), None);
        assert_eq!(b.open_until, Some(t + COOL));
    }

    #[test]
    fn half_opens_after_the_cooldown_with_one_probe_which_closes_or_reopens_it() {
        let mut b = Breaker::default();
        let t = Instant::now();
        b.failed(false, t, 1, COOL);
        let later = t + COOL;
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.admit(later).unwrap(), "the first call after the cool-down is the probe");
        assert!(b.admit(later).is_err(), "only one probe at a time");
        assert_eq!(b.failed(true, later, 1, COOL), Some(Transition::Reopened));
        assert_eq!(b.state(later), BreakerState::Open);
        assert!(b.admit(later + Duration::from_secs(1)).is_err());

        let again = later + COOL;
        assert!(b.admit(again).unwrap());
        assert_eq!(b.succeeded(), Some(Transition::Closed));
        assert_eq!(b.state(again), BreakerState::Closed);
        assert_eq!(b.consecutive_failures, 0);
        assert!(!b.admit(again).unwrap());
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let mut b = Breaker::default();
        let t = Instant::now();
        b.failed(false, t, 1, COOL);
        assert!(b.admit(t + COOL).unwrap());
        b.probe_abandoned();
        assert!(b.admit(t + COOL).unwrap());
    }

    #[test]
    fn threshold_zero_never_opens() {
        let mut b = Breaker::default();
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.failed(false, t, 0, COOL), None);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    fn ids() -> (ProjectId, ProviderName) {
        (ProjectId::parse("Pp").unwrap(), ProviderName::parse("acme").unwrap())
    }

    fn settings(max: usize) -> ProviderGuardSettings {
        ProviderGuardSettings {
            max_concurrent_refreshes: max,
            slot_wait: Duration::from_millis(50),
            failure_threshold: 2,
            cooldown: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn slots_bound_concurrent_calls_per_provider_only() {
        let guards = ProviderGuards::new(settings(2));
        let (p, acme) = ids();
        let other = ProviderName::parse("other").unwrap();
        let a = guards.enter(&p, &acme, "https://a/token").await.unwrap();
        let _b = guards.enter(&p, &acme, "https://a/token").await.unwrap();
        let third = guards.enter(&p, &acme, "https://a/token").await.err().unwrap();
        assert!(matches!(third, Error::Provider { failure: ProviderFailure::Timeout(50), .. }), "{third:?}");
        // Another provider, or the same name in another project, has its own slots.
        assert!(guards.enter(&p, &other, "https://o/token").await.is_ok());
        assert!(guards.enter(&ProjectId::parse("Pq").unwrap(), &acme, "https://a/token").await.is_ok());
        drop(a);
        assert!(guards.enter(&p, &acme, "https://a/token").await.is_ok());
    }

    #[tokio::test]
    async fn failures_open_the_breaker_and_a_new_token_endpoint_starts_afresh() {
        let guards = ProviderGuards::new(settings(4));
        let (p, acme) = ids();
        let url = "https://a/token";
        for _ in 0..2 {
            guards.enter(&p, &acme, url).await.unwrap().record(&Err(ProviderFailure::Unavailable(500)));
        }
        let refused = guards.enter(&p, &acme, url).await.err().unwrap();
        assert!(
            matches!(
                refused,
                Error::Provider { failure: ProviderFailure::Suspended { failures: 2, .. }, .. }
            ),
            "{refused:?}"
        );
        let report = guards.report();
        assert_eq!(report.len(), 1);
        assert_eq!((report[0].state, report[0].consecutive_failures), (BreakerState::Open, 2));

        // The provider's own refusals are answers, not faults.
        let q = ProjectId::parse("Pq").unwrap();
        for _ in 0..5 {
            guards.enter(&q, &acme, url).await.unwrap().record(&Err(ProviderFailure::InvalidGrant));
        }
        assert!(guards.enter(&q, &acme, url).await.is_ok());

        // Reconfigured to another endpoint: judged afresh.
        assert!(guards.enter(&p, &acme, "https://b/token").await.is_ok());
        assert!(guards.report().is_empty());
    }
}
