//! One kind's unique names: the table's own rows, found by name.
//!
//! A persistent hash trie, like the tables: a view of the store
//! ([`super::Store::view`]) copies it by a reference count. As a plain
//! hash table it was copied row by row on every view, so with 20,000
//! configs every request's authority check and every commit's watchers
//! walked 20,000 rows, and creates slowed down as the store grew.
//!
//! Each entry is the object's pointer alone: the key is the object's own
//! name ([`Named`]), so no string is held twice.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use imbl::GenericHashMap;
use imbl::shared_ptr::DefaultSharedPtr;

use super::object::Stored;
use super::tables::Row;

/// Seeded per process: the index is rebuilt, never written out.
type NameHasher = foldhash::fast::RandomState;

/// A row as the index's key: hashed, compared and found by its name.
struct Named<T>(Row<T>);

impl<T> Clone for Named<T> {
    fn clone(&self) -> Self {
        Named(self.0.clone())
    }
}

impl<T: Stored> Borrow<str> for Named<T> {
    fn borrow(&self) -> &str {
        self.0.object().name()
    }
}

impl<T: Stored> Hash for Named<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the name's own `str` hash, so a lookup by `&str` finds it.
        self.0.object().name().hash(state)
    }
}

impl<T: Stored> PartialEq for Named<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.object().name() == other.0.object().name()
    }
}

impl<T: Stored> Eq for Named<T> {}

/// The objects of one kind that hold a name, by name.
pub struct Names<T> {
    rows: GenericHashMap<Named<T>, (), NameHasher, DefaultSharedPtr>,
}

impl<T: Stored> Names<T> {
    /// The object holding `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.rows
            .get_key_value(name)
            .map(|(named, ())| named.0.object())
    }

    /// `row` holds its name from now on (the caller checked that no other
    /// object does). An unnamed object holds nothing.
    pub fn claim(&mut self, row: Row<T>) {
        if row.object().name().is_empty() {
            return;
        }
        // `insert` keeps an equal key in place: take the old one out first.
        let named = Named(row);
        self.rows.remove(named.0.object().name());
        self.rows.insert(named, ());
    }

    /// `obj` gives up its name, if it holds it.
    pub fn release(&mut self, obj: &T) {
        let held_by_obj = self
            .rows
            .get_key_value(obj.name())
            .is_some_and(|(held, ())| held.0.object().id() == obj.id());
        if held_by_obj {
            self.rows.remove(obj.name());
        }
    }
}

impl<T: Stored> Default for Names<T> {
    fn default() -> Self {
        Names {
            rows: GenericHashMap::default(),
        }
    }
}

impl<T> Clone for Names<T> {
    fn clone(&self) -> Self {
        Names {
            rows: self.rows.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Names<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Names({} held)", self.rows.len())
    }
}
