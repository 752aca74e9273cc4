//! Single flight: one async mutex per key (a reference being pulled, a
//! layer being unpacked), so the second caller waits for the first and
//! then finds the work done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One async mutex per key; entries go away with their last user.
#[derive(Default)]
pub(super) struct KeyedLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Holds one key of [`KeyedLocks`].
pub(super) struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub(super) async fn lock(&self, key: String) -> KeyGuard<'_> {
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        KeyGuard {
            locks: self,
            key,
            guard: Some(mutex.lock_owned().await),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        // No one else holds or waits for it: only the map's Arc is left.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}
