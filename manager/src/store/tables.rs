//! The in-memory tables: one hash map per kind, plus the secondary
//! indexes the leader's loops need (tasks by service, by node and by network, unique
//! names). Applying a batch is all-or-nothing: every action is checked
//! first, then all are written, so a conflict leaves the tables untouched
//! and every manager reaches the same verdict from the same log.

use std::any::Any;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use imbl::GenericHashMap;
use imbl::shared_ptr::DefaultSharedPtr;

use shoal_proto::objects::{Cluster, Config, Network, Node, Secret, Service, Task};
use shoal_proto::store::store_action::Kind as ActionKind;
use shoal_proto::store::{StoreAction, StoreBatch, StoreSnapshot};

use super::names::Names;
use super::object::{Changed, Kind, Stored, id_of, kind_of};
use super::{Event, EventAction, StoreError};

/// A task index (tasks by service, by node): persistent like the tables,
/// so a copy of the tables for a view ([`super::Store::view`]) costs a
/// few reference counts, not a walk of every task.
type TaskIndex =
    GenericHashMap<String, imbl::OrdSet<String>, foldhash::fast::RandomState, DefaultSharedPtr>;

/// Hashes of ids: one fixed seed, the same on every manager. (The walk
/// order of a table still depends on the order of its inserts, so
/// [`Frozen::digest`] sorts.) Ids are random and made by managers, not
/// chosen by clients.
type IdHasher = foldhash::fast::FixedState;

/// One kind's objects by id: a persistent hash trie (HAMT), not an
/// ordered tree. With a million objects a B-tree lookup (16 keys a node,
/// six levels, a binary search in each) missed the cache ~25 times and
/// was a fifth of a manager's CPU under load; the trie goes straight to
/// one slot in each of ~4 levels. Ids are random, so their order meant
/// nothing: only a lookup by id prefix pays (it scans).
///
/// Each entry is one pointer, [`Row`]: the key is the object's own id.
/// A trie node has room for 32 entries whatever it holds, and every write
/// to a node shared with a snapshot ([`Tables::frozen`]) copies the node
/// whole; with the id inline beside the pointer an entry took 56 bytes,
/// and those copies and fresh pages were a third of a manager's CPU under
/// load. The trie keeps part of each hash beside the entry, so a lookup
/// reads the object's id only where the hashes agree.
pub type Table<T> = GenericHashMap<Row<T>, (), IdHasher, DefaultSharedPtr>;

/// A stored object as a table's key: hashed and compared by its id, and
/// found by a `&str` id ([`Borrow`]).
#[derive(Debug)]
pub struct Row<T>(Arc<T>);

impl<T> Row<T> {
    /// The stored object.
    pub(super) fn object(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for Row<T> {
    fn clone(&self) -> Self {
        Row(self.0.clone())
    }
}

impl<T: Stored> Borrow<str> for Row<T> {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

impl<T: Stored> Hash for Row<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the id's own `str` hash, so a lookup by `&str` finds it.
        self.0.id().hash(state)
    }
}

impl<T: Stored> PartialEq for Row<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<T: Stored> Eq for Row<T> {}

/// Every object the store holds. The tables are persistent maps: a copy
/// ([`Tables::frozen`]) costs nothing and shares what does not change
/// afterwards, so a snapshot is encoded off the Raft loop.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    pub(super) nodes: Table<Node>,
    pub(super) services: Table<Service>,
    pub(super) tasks: Table<Task>,
    pub(super) networks: Table<Network>,
    pub(super) secrets: Table<Secret>,
    pub(super) configs: Table<Config>,
    pub(super) clusters: Table<Cluster>,
    // Unique names, for the kinds whose names are unique.
    pub(super) service_names: Names<Service>,
    pub(super) network_names: Names<Network>,
    pub(super) secret_names: Names<Secret>,
    pub(super) config_names: Names<Config>,
    pub(super) cluster_names: Names<Cluster>,
    tasks_by_service: TaskIndex,
    tasks_by_node: TaskIndex,
    tasks_by_network: TaskIndex,
}

impl Tables {
    /// The object of kind `T` with this id.
    pub fn get<T: Stored>(&self, id: &str) -> Option<&T> {
        T::table(self)
            .get_key_value(id)
            .map(|(row, ())| row.object())
    }

    /// The object of kind `T` with this (unique) name.
    pub fn get_by_name<T: Stored>(&self, name: &str) -> Option<&T> {
        T::names(self)?.get(name)
    }

    /// Resolves what a user typed (full id, unique name, or unique id
    /// prefix, in that order, as Docker does).
    pub fn find<T: Stored>(&self, what: &str) -> Result<&T, StoreError> {
        if let Some(x) = self.get::<T>(what).or_else(|| self.get_by_name::<T>(what)) {
            return Ok(x);
        }
        // A scan: rare (a user typing part of an id) and still only
        // milliseconds at a million objects.
        let mut matches = self.all::<T>().filter(|x| x.id().starts_with(what));
        match (matches.next(), matches.next()) {
            (Some(x), None) if !what.is_empty() => Ok(x),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous {
                kind: T::KIND,
                what: what.to_string(),
            }),
            _ => Err(StoreError::NotFound {
                kind: T::KIND,
                what: what.to_string(),
            }),
        }
    }

    /// How many objects of kind `T` there are: the table knows, no walk.
    pub fn count<T: Stored>(&self) -> usize {
        T::table(self).len()
    }

    /// Every object of kind `T`, in no particular order.
    pub fn all<T: Stored>(&self) -> impl Iterator<Item = &T> {
        objects(T::table(self))
    }

    /// Tasks of a service.
    pub fn tasks_of_service(&self, service_id: &str) -> impl Iterator<Item = &Task> {
        self.indexed_tasks(self.tasks_by_service.get(service_id))
    }

    /// Tasks assigned to a node.
    pub fn tasks_of_node(&self, node_id: &str) -> impl Iterator<Item = &Task> {
        self.indexed_tasks(self.tasks_by_node.get(node_id))
    }

    /// Tasks attached to a network (whatever their state).
    pub fn tasks_on_network(&self, network_id: &str) -> impl Iterator<Item = &Task> {
        self.indexed_tasks(self.tasks_by_network.get(network_id))
    }

    fn indexed_tasks<'a>(
        &'a self,
        ids: Option<&'a imbl::OrdSet<String>>,
    ) -> impl Iterator<Item = &'a Task> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.get::<Task>(id))
    }

    /// The cluster object, once `swarm init` has made it.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.all::<Cluster>().next()
    }

    /// Checks one action against the tables as they are: creates are new,
    /// updates carry the current version, removes name something, names
    /// stay unique. Transactions check each action as it is added.
    pub fn check(&self, action: &StoreAction) -> Result<(), StoreError> {
        let object = action.target.as_ref().ok_or(StoreError::EmptyAction)?;
        if id_of(object).is_empty() {
            return Err(StoreError::EmptyId {
                kind: kind_of(object),
            });
        }
        crate::with_object!(object, |x| self.check_one(action.kind(), x))
    }

    /// Checks a whole batch: every action against the tables, then the
    /// actions against each other.
    pub fn check_batch(&self, actions: &[StoreAction]) -> Result<(), StoreError> {
        actions.iter().try_for_each(|a| self.check(a))?;
        check_together(actions)
    }

    fn check_one<T: Stored>(&self, action: ActionKind, obj: &T) -> Result<(), StoreError> {
        let current = self.get::<T>(obj.id());
        let not_found = || StoreError::NotFound {
            kind: T::KIND,
            what: obj.id().to_string(),
        };
        match action {
            ActionKind::Create if current.is_some() => {
                return Err(StoreError::Exists {
                    kind: T::KIND,
                    id: obj.id().to_string(),
                });
            }
            ActionKind::Update | ActionKind::Remove if current.is_none() => return Err(not_found()),
            ActionKind::Update => {
                let current = current.ok_or_else(not_found)?;
                if current.version() != obj.version() {
                    return Err(StoreError::VersionConflict {
                        kind: T::KIND,
                        id: obj.id().to_string(),
                        expected: current.version(),
                        got: obj.version(),
                    });
                }
            }
            _ => {}
        }
        if action != ActionKind::Remove
            && !obj.name().is_empty()
            && let Some(holder) = T::names(self).and_then(|n| n.get(obj.name()))
            && holder.id() != obj.id()
        {
            return Err(StoreError::NameConflict {
                kind: T::KIND,
                name: obj.name().to_string(),
            });
        }
        Ok(())
    }

    /// Applies a committed batch at Raft `index`: checks it whole, then
    /// writes it, stamping every written object's version with `index`.
    pub fn apply(&mut self, index: u64, batch: StoreBatch) -> Result<Vec<Event>, StoreError> {
        self.check_batch(&batch.actions)?;
        let mut events = Vec::with_capacity(batch.actions.len());
        for action in batch.actions {
            let kind = action.kind();
            let Some(object) = action.target else {
                continue;
            };
            let event = match kind {
                ActionKind::Create | ActionKind::Update => {
                    let new = kind == ActionKind::Create;
                    let object = crate::with_object!(owned object, |x| self.put(index, x, new));
                    let action = if new {
                        EventAction::Create
                    } else {
                        EventAction::Update
                    };
                    Event { action, object }
                }
                ActionKind::Remove => {
                    let object = crate::with_object!(owned object, |x| self.delete(x));
                    Event {
                        action: EventAction::Remove,
                        object,
                    }
                }
            };
            events.push(event);
        }
        Ok(events)
    }

    /// Stores `obj` at version `index` and returns it for the event;
    /// `new`: checked, no object has its id.
    fn put<T: Stored>(&mut self, index: u64, mut obj: T, new: bool) -> Changed {
        obj.meta_mut().version = index;
        let obj = Arc::new(obj);
        // The insert replaces the key (the old object) without handing it
        // back: an update looks it up first (the walk also brings the path
        // into the cache for the insert).
        let table = T::table_mut(self);
        let old = match new {
            true => None,
            false => table.get_key_value(obj.id()).map(|(row, ())| row.clone()),
        };
        table.insert(Row(obj.clone()), ());
        if let Some(Row(old)) = old {
            self.unindex(&*old);
        }
        self.index(&obj);
        T::changed(obj)
    }

    fn delete<T: Stored>(&mut self, obj: T) -> Changed {
        match T::table_mut(self).remove_with_key(obj.id()) {
            Some((Row(removed), ())) => {
                self.unindex(&*removed);
                T::changed(removed)
            }
            None => {
                self.unindex(&obj);
                T::changed(Arc::new(obj))
            }
        }
    }

    /// Indexes a stored object (after its old version was unindexed).
    fn index<T: Stored>(&mut self, obj: &Arc<T>) {
        if let Some(names) = T::names_mut(self) {
            names.claim(Row(obj.clone()));
        }
        if let Some(task) = (&**obj as &dyn Any).downcast_ref::<Task>() {
            self.tasks_by_service
                .entry(task.service_id.clone())
                .or_default()
                .insert(task.id.clone());
            if !task.node_id.is_empty() {
                self.tasks_by_node
                    .entry(task.node_id.clone())
                    .or_default()
                    .insert(task.id.clone());
            }
            for network in attached_networks(task) {
                self.tasks_by_network
                    .entry(network.to_string())
                    .or_default()
                    .insert(task.id.clone());
            }
        }
    }

    fn unindex<T: Stored>(&mut self, obj: &T) {
        if let Some(names) = T::names_mut(self) {
            names.release(obj);
        }
        if let Some(task) = (obj as &dyn Any).downcast_ref::<Task>() {
            for (index, key) in [
                (&mut self.tasks_by_service, &task.service_id),
                (&mut self.tasks_by_node, &task.node_id),
            ] {
                unindex_task(index, key, &task.id);
            }
            for network in attached_networks(task) {
                unindex_task(&mut self.tasks_by_network, network, &task.id);
            }
        }
    }

    /// The whole store as one message, for Raft snapshots.
    pub fn snapshot(&self) -> StoreSnapshot {
        self.frozen().snapshot()
    }

    /// The objects as they are now, unchanged by later writes; O(1).
    pub fn frozen(&self) -> Frozen {
        Frozen(Tables {
            nodes: self.nodes.clone(),
            services: self.services.clone(),
            tasks: self.tasks.clone(),
            networks: self.networks.clone(),
            secrets: self.secrets.clone(),
            configs: self.configs.clone(),
            clusters: self.clusters.clone(),
            ..Tables::default()
        })
    }

    /// Tables rebuilt from a snapshot (indexes included).
    pub fn from_snapshot(snapshot: StoreSnapshot) -> Tables {
        let mut tables = Tables::default();
        tables.restore(snapshot.nodes);
        tables.restore(snapshot.services);
        tables.restore(snapshot.tasks);
        tables.restore(snapshot.networks);
        tables.restore(snapshot.secrets);
        tables.restore(snapshot.configs);
        tables.restore(snapshot.clusters);
        tables
    }

    /// Stores `objects` as they were, versions included.
    fn restore<T: Stored>(&mut self, objects: Vec<T>) {
        for x in objects {
            let version = x.version();
            self.put(version, x, false);
        }
    }
}

/// The ids of the networks a task is attached to.
fn attached_networks(task: &Task) -> impl Iterator<Item = &str> {
    task.networks
        .iter()
        .filter_map(|a| a.network.as_ref())
        .map(|n| n.id.as_str())
        .filter(|id| !id.is_empty())
}

fn unindex_task(index: &mut TaskIndex, key: &str, task_id: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(task_id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// What the actions of one batch must not do to each other: touch an
/// object twice, or claim one name twice. (Each was checked against the
/// tables already; this needs no lookup in them.) Sorted pairs, not hash
/// sets: a batch is small, and growing two sets was most of this check.
pub fn check_together(actions: &[StoreAction]) -> Result<(), StoreError> {
    if actions.len() < 2 {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(actions.len());
    let mut names = Vec::with_capacity(actions.len());
    for action in actions {
        let object = action.target.as_ref().ok_or(StoreError::EmptyAction)?;
        let kind = kind_of(object);
        ids.push((kind, id_of(object)));
        let name = crate::with_object!(object, |x| x.name());
        if action.kind() != ActionKind::Remove && kind.unique_names() && !name.is_empty() {
            names.push((kind, name));
        }
    }
    if let Some((kind, id)) = first_repeat(&mut ids) {
        return Err(StoreError::Duplicate {
            kind,
            id: id.to_string(),
        });
    }
    if let Some((kind, name)) = first_repeat(&mut names) {
        return Err(StoreError::NameConflict {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The smallest pair that occurs twice (sorts `pairs`).
fn first_repeat<'a>(pairs: &mut [(Kind, &'a str)]) -> Option<(Kind, &'a str)> {
    pairs.sort_unstable();
    pairs.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// The objects of [`Tables`] at one moment (no indexes): what a snapshot
/// is made of.
#[derive(Debug, Clone)]
pub struct Frozen(Tables);

impl Frozen {
    /// The objects as one message.
    pub fn snapshot(&self) -> StoreSnapshot {
        let t = &self.0;
        StoreSnapshot {
            nodes: copies(&t.nodes),
            services: copies(&t.services),
            tasks: copies(&t.tasks),
            networks: copies(&t.networks),
            secrets: copies(&t.secrets),
            configs: copies(&t.configs),
            clusters: copies(&t.clusters),
        }
    }

    /// SHA-256 of the objects, each table in id order: the same on every
    /// manager holding the same objects, however they came to hold them
    /// (a snapshot's bytes follow a table's walk order, which does not).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let t = &self.0;
        let mut hasher = sha2::Sha256::new();
        let mut buf = Vec::new();
        hash_field(1, &t.nodes, &mut hasher, &mut buf);
        hash_field(2, &t.services, &mut hasher, &mut buf);
        hash_field(3, &t.tasks, &mut hasher, &mut buf);
        hash_field(4, &t.networks, &mut hasher, &mut buf);
        hash_field(5, &t.secrets, &mut hasher, &mut buf);
        hash_field(6, &t.configs, &mut hasher, &mut buf);
        hash_field(7, &t.clusters, &mut hasher, &mut buf);
        hasher.finalize().into()
    }

    /// [`Frozen::snapshot`] as message field `tag`, appended to `buf`
    /// straight from the tables: the same objects (each table in memory
    /// order, see `in_memory_order`), without copying every object first
    /// (for a large store, most of a snapshot's cost).
    ///
    /// The field's key and length come first, but the length is known
    /// only once the objects are written: they go after room for the
    /// longest key and length, which are then written at the end of that
    /// room. Returns where the field begins; the bytes between the old end
    /// of `buf` and that offset are unused room for the caller to skip
    /// (closing the gap moved every byte of a snapshot once more, and
    /// measuring first was a second walk over every object).
    #[must_use = "the field begins at the returned offset"]
    pub fn encode_snapshot_field(&self, tag: u32, buf: &mut Vec<u8>) -> usize {
        use prost::encoding::{WireType, encode_key, encode_varint};
        const ROOM: usize = 5 + 10;
        let start = buf.len();
        buf.resize(start + ROOM, 0);
        let t = &self.0;
        // `StoreSnapshot`'s field numbers.
        put_field(1, &t.nodes, buf);
        put_field(2, &t.services, buf);
        put_field(3, &t.tasks, buf);
        put_field(4, &t.networks, buf);
        put_field(5, &t.secrets, buf);
        put_field(6, &t.configs, buf);
        put_field(7, &t.clusters, buf);
        let len = buf.len() - start - ROOM;
        let mut head = Vec::with_capacity(ROOM);
        encode_key(tag, WireType::LengthDelimited, &mut head);
        encode_varint(len as u64, &mut head);
        let at = start + ROOM - head.len();
        buf[at..start + ROOM].copy_from_slice(&head);
        at
    }
}

/// A table's objects, copied out.
fn copies<T: Stored>(table: &Table<T>) -> Vec<T> {
    objects(table).cloned().collect()
}

/// A table's objects, in its walk order.
fn objects<T>(table: &Table<T>) -> impl Iterator<Item = &T> {
    table.keys().map(Row::object)
}

/// A table's objects in their order in memory: a walk in the trie's
/// (hash) order read each object and its strings from a cold cache line,
/// ~0.9 µs an object at a million; sorted by address, the reads mostly
/// follow the order the allocator handed the memory out in, and encoding
/// a snapshot takes a third of the time. (The order means nothing: a
/// digest sorts by id.)
fn in_memory_order<T: Stored>(table: &Table<T>) -> Vec<&T> {
    let mut objects: Vec<&T> = objects(table).collect();
    objects.sort_unstable_by_key(|&x| x as *const T as usize);
    objects
}

/// A table as repeated message field `field`, in id order, into `hasher`.
fn hash_field<M: Stored + prost::Message>(
    field: u32,
    table: &Table<M>,
    hasher: &mut sha2::Sha256,
    buf: &mut Vec<u8>,
) {
    use sha2::Digest as _;
    let mut sorted: Vec<&M> = objects(table).collect();
    sorted.sort_unstable_by(|a, b| a.id().cmp(b.id()));
    for m in sorted {
        buf.clear();
        prost::encoding::message::encode(field, m, buf);
        hasher.update(&buf[..]);
    }
}

/// A table as repeated message field `field`.
fn put_field<M: Stored + prost::Message>(field: u32, table: &Table<M>, buf: &mut Vec<u8>) {
    for m in in_memory_order(table) {
        prost::encoding::message::encode(field, m, buf);
    }
}
