//! What one WAL record says, and its byte form (before sealing).
//!
//! Layout: a flags byte, then the parts the flags announce, in this order:
//! reset (snapshot index and term), compact (first index kept), hard state
//! (u32 length + protobuf), and always the entries (u32 count, then each
//! as u32 length + protobuf). Integers are little-endian.

use ::raft::eraftpb::{Entry, HardState};
use protobuf::Message;

const F_RESET: u8 = 1;
const F_COMPACT: u8 = 2;
const F_HARD: u8 = 4;

/// One change to the log, applied in the order of its fields.
#[derive(Debug, Default, Clone, PartialEq)]
pub(in crate::raft::storage) struct Record {
    /// The log was replaced by the snapshot at (index, term): every entry
    /// written before this record is gone.
    pub(in crate::raft::storage) reset: Option<(u64, u64)>,
    /// Entries before this index are compacted away.
    pub(in crate::raft::storage) compact: Option<u64>,
    /// The hard state from now on.
    pub(in crate::raft::storage) hard: Option<HardState>,
    /// Entries appended, replacing any stored from their first index on.
    pub(in crate::raft::storage) entries: Vec<Entry>,
}

impl Record {
    /// Whether the record changes nothing.
    pub(in crate::raft::storage) fn is_empty(&self) -> bool {
        self.reset.is_none()
            && self.compact.is_none()
            && self.hard.is_none()
            && self.entries.is_empty()
    }

    /// The highest entry index the record writes, if it writes any.
    pub(in crate::raft::storage) fn last_index(&self) -> Option<u64> {
        self.entries.last().map(|e| e.index)
    }

    /// The record's byte form (the WAL encodes into its write buffer).
    #[cfg(test)]
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the record's byte form to `out`.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        let size: usize = self
            .entries
            .iter()
            .map(|e| e.compute_size() as usize + 4)
            .sum();
        out.reserve(size + 64 + crate::seal::TAG_LEN);
        let flag = |present: bool, bit: u8| if present { bit } else { 0 };
        let flags = flag(self.reset.is_some(), F_RESET)
            | flag(self.compact.is_some(), F_COMPACT)
            | flag(self.hard.is_some(), F_HARD);
        out.push(flags);
        if let Some((index, term)) = self.reset {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
        }
        if let Some(index) = self.compact {
            out.extend_from_slice(&index.to_le_bytes());
        }
        if let Some(hs) = &self.hard {
            put_message(out, hs);
        }
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            put_message(out, e);
        }
    }

    /// Decodes what [`Record::encode`] made; `None` if it does not parse.
    pub(super) fn decode(bytes: &[u8]) -> Option<Record> {
        let mut r = Reader(bytes);
        let flags = r.take(1)?[0];
        let mut rec = Record::default();
        if flags & F_RESET != 0 {
            rec.reset = Some((r.u64()?, r.u64()?));
        }
        if flags & F_COMPACT != 0 {
            rec.compact = Some(r.u64()?);
        }
        if flags & F_HARD != 0 {
            rec.hard = Some(HardState::parse_from_bytes(r.sized()?).ok()?);
        }
        let count = r.u32()?;
        rec.entries = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            rec.entries.push(Entry::parse_from_bytes(r.sized()?).ok()?);
        }
        r.0.is_empty().then_some(rec)
    }
}

fn put_message(out: &mut Vec<u8>, msg: &dyn Message) {
    out.extend_from_slice(&msg.compute_size().to_le_bytes());
    // Writing a protobuf message to a Vec cannot fail.
    let _ = msg.write_to_vec(out);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn sized(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_round_trips_and_garbage_does_not_decode() {
        let rec = Record {
            reset: Some((7, 2)),
            compact: Some(5),
            hard: Some(HardState {
                term: 3,
                vote: 1,
                commit: 9,
                ..Default::default()
            }),
            entries: vec![Entry {
                index: 8,
                term: 3,
                data: b"x".to_vec().into(),
                ..Default::default()
            }],
        };
        let bytes = rec.encode();
        assert_eq!(Record::decode(&bytes), Some(rec));
        assert_eq!(Record::decode(&bytes[..bytes.len() - 1]), None);
        let empty = Record::default();
        assert!(empty.is_empty());
        assert_eq!(Record::decode(&empty.encode()), Some(empty));
    }
}
