//! The per-client cache of reduced states, keyed by state id and reducer revision, bounded by
//! entries and by bytes (quick_cache weighs each entry). A hit is where a load starts; the
//! events after it are still read, and a command appends against it optimistically.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::options::CacheOptions;

/// A reduced state as its reducer encoded it, at a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedState {
    pub version: u64,
    pub state: Arc<[u8]>,
    /// The version of the newest snapshot stored for it, so the snapshot policy can count.
    pub snapshot_version: u64,
}

type Key = (String, String);

/// Weighs an entry by its bytes, but never below `max_bytes / max_entries`: so the byte budget
/// also caps the number of entries.
#[derive(Clone, Debug)]
struct ByBytes {
    floor: u64,
}

impl Weighter<Key, CachedState> for ByBytes {
    fn weight(&self, key: &Key, value: &CachedState) -> u64 {
        let bytes = (key.0.len() + key.1.len() + value.state.len() + 64) as u64;
        bytes.max(self.floor)
    }
}

#[derive(Debug)]
pub(crate) struct StateCache {
    cache: Option<Cache<Key, CachedState, ByBytes>>,
    max_bytes: u64,
}

impl StateCache {
    pub fn new(options: &CacheOptions) -> Self {
        let cache = (options.max_entries > 0 && options.max_bytes > 0).then(|| {
            let floor = (options.max_bytes / options.max_entries as u64).max(1);
            Cache::with_weighter(options.max_entries, options.max_bytes, ByBytes { floor })
        });
        Self { cache, max_bytes: options.max_bytes }
    }

    pub fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    pub fn get(&self, state_id: &str, revision: &str) -> Option<CachedState> {
        self.cache.as_ref()?.get(&(state_id.to_owned(), revision.to_owned()))
    }

    /// Keeps the entry unless a newer one is there already (another task got further).
    pub fn put(&self, state_id: &str, revision: &str, entry: CachedState) {
        let Some(cache) = &self.cache else { return };
        if entry.state.len() as u64 > self.max_bytes {
            return;
        }
        let key = (state_id.to_owned(), revision.to_owned());
        if cache.get(&key).is_some_and(|known| known.version > entry.version) {
            return;
        }
        cache.insert(key, entry);
    }

    pub fn remove(&self, state_id: &str, revision: &str) {
        if let Some(cache) = &self.cache {
            cache.remove(&(state_id.to_owned(), revision.to_owned()));
        }
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (usize, u64) {
        self.cache.as_ref().map_or((0, 0), |c| (c.len(), c.weight()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, bytes: usize) -> CachedState {
        CachedState { version, state: vec![7; bytes].into(), snapshot_version: 0 }
    }

    #[test]
    fn bounded_by_entries_and_by_bytes() {
        let cache = StateCache::new(&CacheOptions { max_entries: 100, max_bytes: 100 * 1024 });
        for i in 0..1000 {
            cache.put(&format!("s{i}"), "r", entry(1, 10));
        }
        let (entries, bytes) = cache.usage();
        assert!(entries <= 100, "{entries} entries");
        assert!(bytes <= 100 * 1024);
        for i in 0..1000 {
            cache.put(&format!("big{i}"), "r", entry(1, 10 * 1024));
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 100 * 1024, "{bytes} bytes");
        assert!(entries <= 100, "{entries} entries");
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = StateCache::new(&CacheOptions::default());
        cache.put("s", "r", entry(5, 1));
        cache.put("s", "r", entry(3, 1));
        assert_eq!(cache.get("s", "r").map(|e| e.version), Some(5));
        assert_eq!(cache.get("s", "other revision"), None);
        cache.put("s", "r", entry(6, 1));
        assert_eq!(cache.get("s", "r").map(|e| e.version), Some(6));
    }

    #[test]
    fn zero_entries_turns_it_off() {
        let cache = StateCache::new(&CacheOptions { max_entries: 0, max_bytes: 1 });
        cache.put("s", "r", entry(1, 1));
        assert!(!cache.enabled());
        assert_eq!(cache.get("s", "r"), None);
    }
}
