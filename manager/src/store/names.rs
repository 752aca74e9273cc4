//! One kind's unique names: the table's own rows, found by name.
//!
//! A map of name → id held both strings again, two allocations and 48
//! bytes a slot, and its doubling at a few million names faulted in
//! hundreds of megabytes at once (a tenth of a manager's CPU late in a
//! long run of creates). A slot here is the object's pointer and its
//! name's hash, and the name it is found by is the object's own. (The hash
//! is kept so a doubling moves slots without reading every object again.)

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::object::Stored;
use super::tables::Row;

/// Seeded per process: the index is rebuilt, never written out.
type NameHasher = foldhash::fast::RandomState;

/// The objects of one kind that hold a name, by name.
pub struct Names<T> {
    rows: HashTable<(u64, Row<T>)>,
    hasher: NameHasher,
}

impl<T: Stored> Names<T> {
    /// The object holding `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.rows
            .find(self.hasher.hash_one(name), |(_, row)| {
                row.object().name() == name
            })
            .map(|(_, row)| row.object())
    }

    /// `row` holds its name from now on (the caller checked that no other
    /// object does). An unnamed object holds nothing.
    pub fn claim(&mut self, row: Row<T>) {
        let name = row.object().name();
        if name.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(name);
        let entry = self.rows.entry(
            hash,
            |(_, held)| held.object().name() == name,
            |&(hash, _)| hash,
        );
        match entry {
            Entry::Occupied(mut held) => held.get_mut().1 = row,
            Entry::Vacant(free) => {
                free.insert((hash, row));
            }
        }
    }

    /// `obj` gives up its name, if it holds it.
    pub fn release(&mut self, obj: &T) {
        let held_by_obj = |(_, held): &(u64, Row<T>)| {
            let held = held.object();
            held.name() == obj.name() && held.id() == obj.id()
        };
        if let Ok(held) = self
            .rows
            .find_entry(self.hasher.hash_one(obj.name()), held_by_obj)
        {
            held.remove();
        }
    }
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            rows: HashTable::new(),
            hasher: NameHasher::default(),
        }
    }
}

impl<T> Clone for Names<T> {
    fn clone(&self) -> Self {
        Names {
            rows: self.rows.clone(),
            hasher: self.hasher,
        }
    }
}

impl<T> std::fmt::Debug for Names<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Names({} held)", self.rows.len())
    }
}
