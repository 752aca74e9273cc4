//! The log in memory. Every entry since the last compaction lives here (as
//! etcd's `MemoryStorage` does): raft-rs reads entries and terms all the
//! time (appends to followers, commit checks, conflict probes), and the
//! WAL on disk is only ever read back at open. The snapshot policy bounds
//! the log to about twice the size of the store.

use std::collections::VecDeque;

use ::raft::eraftpb::Entry;

/// Consecutive entries, the whole stored log.
#[derive(Debug, Default)]
pub(super) struct MemLog {
    entries: VecDeque<Entry>,
}

impl MemLog {
    /// The log replayed at open.
    pub(super) fn new(entries: VecDeque<Entry>) -> MemLog {
        MemLog { entries }
    }

    /// Index of the first entry, if any.
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Follows a write: `appended` were written (replacing any stored
    /// entries from their first index on), and the log now holds `range`
    /// (first, last) or nothing.
    pub(super) fn follow(&mut self, appended: &[Entry], range: Option<(u64, u64)>) {
        if let Some(head) = appended.first() {
            match self.first() {
                Some(first) if head.index >= first => {
                    self.entries.truncate((head.index - first) as usize);
                }
                _ => self.entries.clear(),
            }
            self.entries.extend(appended.iter().cloned());
        }
        let Some((first, _)) = range else {
            self.entries.clear();
            return;
        };
        while self.entries.front().is_some_and(|e| e.index < first) {
            self.entries.pop_front();
        }
    }

    /// The entry at `index`, if stored.
    pub(super) fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first()?;
        self.entries
            .get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    /// Entries `low..high`, while their size stays within `max_size`
    /// (always at least one).
    pub(super) fn slice(&self, low: u64, high: u64, max_size: u64) -> Option<Vec<Entry>> {
        use protobuf::Message;
        let mut out = Vec::with_capacity(high.saturating_sub(low).min(1024) as usize);
        let mut size = 0u64;
        for index in low..high {
            let e = self.get(index)?;
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn follows_appends_truncations_and_compaction() {
        let mut c = MemLog::default();
        c.follow(&[e(1, 1), e(2, 1), e(3, 1)], Some((1, 3)));
        assert_eq!(c.get(2).map(|x| x.term), Some(1));
        // A conflicting suffix is replaced.
        c.follow(&[e(3, 2), e(4, 2)], Some((1, 4)));
        assert_eq!(c.get(3).map(|x| x.term), Some(2));
        assert_eq!(c.get(5), None);
        // Compaction drops the front.
        c.follow(&[], Some((3, 4)));
        assert_eq!(c.first(), Some(3));
        assert!(c.get(2).is_none());
        assert_eq!(c.slice(3, 5, u64::MAX).map(|v| v.len()), Some(2));
        assert_eq!(c.slice(3, 5, 0).map(|v| v.len()), Some(1));
        assert_eq!(c.slice(2, 5, u64::MAX), None);
        // A snapshot empties the log.
        c.follow(&[], None);
        assert_eq!(c.first(), None);
    }
}
