//! Wall-clock access in one place, so that time-dependent rules (key expiry, token expiry) can be
//! tested with a fixed clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

pub type SharedClock = Arc<dyn Clock>;
