//! Whole answers to board reads, kept until the next change.
//!
//! Only single-instance servers use it (with a Redis bus, another instance may commit a
//! change this one hears of late), and only for queries whose root fields are all
//! [`CACHEABLE`] and whose answer had no error. An answer is stored with the generation of
//! the data it was computed from, read *before* it was computed: the writer's committed
//! transactions and the agent snapshot's version. The writer counts a commit before it
//! answers the change, so a client that saw its change acknowledged never gets an answer
//! computed before it. A cached answer went through authentication, the rate limit and the
//! rights check like any other: the lookup comes after them.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// Root fields whose answers depend only on committed rows and the agent snapshot, and are
/// the same for every role (`query_limits::cacheable_read` judges a document by them).
pub const CACHEABLE: [&str; 2] = ["tasks", "task"];
/// Most answers kept; the largest request and answer kept.
const MAX_ENTRIES: usize = 512;
const MAX_KEY: usize = 16 * 1024;
const MAX_ANSWER: usize = 512 * 1024;

/// What the cached data was computed from.
pub type Generation = (u64, u64);

struct Entry {
    generation: Generation,
    answer: Bytes,
}

/// The cache key of a request body answered in `media`; none for bodies too large to keep.
pub fn key(media: &str, body: &[u8]) -> Option<Bytes> {
    (body.len() <= MAX_KEY).then(|| Bytes::from([media.as_bytes(), b"\n", body].concat()))
}

/// The cache (see the module docs).
#[derive(Default)]
pub struct ReadCache {
    entries: Mutex<HashMap<Bytes, Entry>>,
}

impl ReadCache {
    /// The answer stored for request `key` at `generation`, if still current.
    pub fn get(&self, key: &[u8], generation: Generation) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|e| e.generation == generation).map(|e| e.answer.clone())
    }

    /// Keeps `answer` to request `key`, computed from data at `generation`.
    pub fn put(&self, key: Bytes, generation: Generation, answer: Bytes) {
        if answer.len() > MAX_ANSWER {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.generation == generation);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { generation, answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_served_only_at_its_generation() {
        let cache = ReadCache::default();
        let key = Bytes::from_static(b"{\"query\":\"{ tasks { totalCount } }\"}");
        cache.put(key.clone(), (1, 0), Bytes::from_static(b"answer"));
        assert_eq!(cache.get(&key, (1, 0)).as_deref(), Some(&b"answer"[..]));
        assert!(cache.get(&key, (2, 0)).is_none(), "a commit since");
        assert!(cache.get(&key, (1, 1)).is_none(), "the agents changed since");
        for i in 0..(MAX_ENTRIES * 2) {
            cache.put(Bytes::from(format!("k{i}")), (3, 0), Bytes::from_static(b"a"));
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
