//! One refresh at a time per stored token (project and [`RefreshKey`]) inside this process. Waiters queue on an
//! async mutex; the map holds weak references so that idle keys cost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::ids::ProjectId;
use crate::store::RefreshKey;

type Key = (ProjectId, RefreshKey);

#[derive(Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<Key, Weak<tokio::sync::Mutex<()>>>>,
}

impl RefreshLocks {
    /// The lock for a key, shared by everyone asking for the same key while anyone holds it.
    pub fn lock_for(&self, project: &ProjectId, key: &RefreshKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let key = (project.clone(), key.clone());
        if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() >= 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key, Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ProviderName, UserId};

    fn key(user: &str, provider: &ProviderName) -> RefreshKey {
        RefreshKey::ProviderToken { user_id: UserId::parse(user).unwrap(), provider: provider.clone() }
    }

    #[test]
    fn same_key_shares_a_lock_until_released() {
        let locks = RefreshLocks::default();
        let p = ProjectId::parse("Pp").unwrap();
        let g = ProviderName::parse("google").unwrap();
        let a = locks.lock_for(&p, &key("u", &g));
        let b = locks.lock_for(&p, &key("u", &g));
        assert!(Arc::ptr_eq(&a, &b));
        let other = locks.lock_for(&p, &key("v", &g));
        assert!(!Arc::ptr_eq(&a, &other));
        let outbound = locks.lock_for(&p, &RefreshKey::OutboundToken { id: "u".into() });
        assert!(!Arc::ptr_eq(&a, &outbound));
        drop((a, b));
        let c = locks.lock_for(&p, &key("u", &g));
        assert_eq!(Arc::strong_count(&c), 1);
    }
}
