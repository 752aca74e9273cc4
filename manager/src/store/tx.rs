//! A transaction: reads see the tables as they were when it began; writes
//! are recorded as actions and checked one by one as they are added, then
//! against each other when it finishes. Timestamps are set here, on the
//! proposer, so they travel in the log and every manager stores the same
//! ones.

use std::time::SystemTime;

use shoal_proto::store::store_action::Kind as ActionKind;
use shoal_proto::store::{StoreAction, StoreBatch};

use super::object::Stored;
use super::{StoreError, Tables};

/// A transaction under construction.
#[derive(Debug)]
pub struct Tx<'a> {
    tables: &'a Tables,
    actions: Vec<StoreAction>,
    now: prost_types::Timestamp,
}

impl<'a> Tx<'a> {
    pub(super) fn new(tables: &'a Tables) -> Tx<'a> {
        Tx {
            tables,
            actions: Vec::new(),
            now: SystemTime::now().into(),
        }
    }

    /// The tables as they were when the transaction began.
    pub fn tables(&self) -> &'a Tables {
        self.tables
    }

    /// Creates `obj` (its id must be new, its name free).
    pub fn create<T: Stored>(&mut self, mut obj: T) -> Result<(), StoreError> {
        let meta = obj.meta_mut();
        meta.version = 0;
        meta.created_at = Some(self.now);
        meta.updated_at = Some(self.now);
        self.push(ActionKind::Create, obj)
    }

    /// Replaces `obj`; its `meta.version` must be the stored one.
    pub fn update<T: Stored>(&mut self, mut obj: T) -> Result<(), StoreError> {
        obj.meta_mut().updated_at = Some(self.now);
        self.push(ActionKind::Update, obj)
    }

    /// Removes the object of kind `T` with id `id`.
    pub fn remove<T: Stored>(&mut self, id: &str) -> Result<(), StoreError> {
        let current = self
            .tables
            .get::<T>(id)
            .ok_or_else(|| StoreError::NotFound {
                kind: T::KIND,
                what: id.to_string(),
            })?
            .clone();
        self.push(ActionKind::Remove, current)
    }

    fn push<T: Stored>(&mut self, kind: ActionKind, obj: T) -> Result<(), StoreError> {
        let action = StoreAction {
            kind: kind as i32,
            target: Some(obj.into_object()),
        };
        self.tables.check(&action)?;
        self.actions.push(action);
        Ok(())
    }

    pub(super) fn finish(self) -> Result<StoreBatch, StoreError> {
        // Each action was checked against the tables as it was added; what
        // is left is how they fit together.
        super::tables::check_together(&self.actions)?;
        Ok(StoreBatch {
            actions: self.actions,
        })
    }
}
