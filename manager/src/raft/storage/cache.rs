//! The tail of the log, in memory. raft-rs reads entries and terms from
//! storage all the time (appends to followers, commit checks, conflict
//! probes); served from sled each read would cost a lookup, an AEAD open
//! and a protobuf decode. The cache mirrors the newest stored entries,
//! bounded in bytes; anything older is read from sled. It also holds every
//! entry written but not yet handed to sled: for those it is the only copy
//! a reader can see.

use std::collections::VecDeque;

use ::raft::eraftpb::Entry;

/// Bytes of entries kept in memory (the log since the last snapshot is
/// usually far smaller).
const LIMIT: usize = 64 << 20;

/// Consecutive entries ending at the last stored one.
#[derive(Debug, Default)]
pub(super) struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
}

fn size(e: &Entry) -> usize {
    e.data.len() + e.context.len() + 48
}

impl EntryCache {
    /// Index of the first cached entry, if any.
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Follows a committed write: `appended` were written (replacing any
    /// stored entries from their first index on), and the log now holds
    /// `range` (first, last) or nothing.
    pub(super) fn follow(&mut self, appended: &[Entry], range: Option<(u64, u64)>) {
        if let Some(head) = appended.first() {
            while self.entries.back().is_some_and(|e| e.index >= head.index) {
                let e = self.entries.pop_back().expect("checked");
                self.bytes -= size(&e);
            }
            if self
                .entries
                .back()
                .is_some_and(|e| e.index + 1 != head.index)
            {
                self.clear();
            }
            for e in appended {
                self.bytes += size(e);
                self.entries.push_back(e.clone());
            }
        }
        let Some((first, last)) = range else {
            self.clear();
            return;
        };
        if self.entries.back().is_some_and(|e| e.index != last) {
            self.clear();
        }
        self.pop_front_while(|e, _| e.index < first);
    }

    /// Drops the oldest entries while over the size bound, but none at or
    /// after `keep` (entries sled does not hold yet).
    pub(super) fn trim(&mut self, keep: u64) {
        self.pop_front_while(|e, bytes| bytes > LIMIT && e.index < keep);
    }

    fn pop_front_while(&mut self, drop: impl Fn(&Entry, usize) -> bool) {
        while self.entries.front().is_some_and(|e| drop(e, self.bytes)) {
            let e = self.entries.pop_front().expect("checked");
            self.bytes -= size(&e);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entry at `index`, if cached.
    pub(super) fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first()?;
        self.entries
            .get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    #[cfg(test)]
    fn start(&self) -> u64 {
        self.first().unwrap_or(u64::MAX)
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
        let mut c = EntryCache::default();
        c.follow(&[e(1, 1), e(2, 1), e(3, 1)], Some((1, 3)));
        assert_eq!(c.get(2).map(|x| x.term), Some(1));
        // A conflicting suffix is replaced.
        c.follow(&[e(3, 2), e(4, 2)], Some((1, 4)));
        assert_eq!(c.get(3).map(|x| x.term), Some(2));
        assert_eq!(c.get(5), None);
        // Compaction drops the front.
        c.follow(&[], Some((3, 4)));
        assert_eq!(c.start(), 3);
        assert!(c.get(2).is_none());
        // A snapshot empties the log.
        c.follow(&[], None);
        assert_eq!(c.start(), u64::MAX);
    }

    #[test]
    fn a_gap_starts_afresh_and_the_size_is_bounded() {
        let mut c = EntryCache::default();
        c.follow(&[e(1, 1)], Some((1, 1)));
        c.follow(&[e(5, 1)], Some((5, 5)));
        assert_eq!(c.start(), 5);
        let big = Entry {
            index: 6,
            term: 1,
            data: vec![0u8; LIMIT].into(),
            ..Default::default()
        };
        c.follow(&[big, e(7, 1)], Some((5, 7)));
        // Entries sled lacks stay, however many.
        c.trim(6);
        assert_eq!(c.start(), 6);
        c.trim(u64::MAX);
        assert_eq!(c.start(), 7);
    }
}
