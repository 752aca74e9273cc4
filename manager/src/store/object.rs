//! What the store holds: the seven object kinds behind one trait, so the
//! tables, transactions and events are written once for all of them.

use std::sync::Arc;

use shoal_proto::objects::{Cluster, Config, Meta, Network, Node, Secret, Service, Task};
use shoal_proto::store::store_action::Target;

use super::names::Names;
use super::tables::{Table, Tables};

/// Any stored object (the Raft log's own oneof).
pub type Object = Target;

/// An object as a commit's events carry it: the table's own copy, shared
/// (copying every object a write stores, for its event, was a tenth of
/// applying it).
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// A node.
    Node(Arc<Node>),
    /// A service.
    Service(Arc<Service>),
    /// A task.
    Task(Arc<Task>),
    /// A network.
    Network(Arc<Network>),
    /// A secret.
    Secret(Arc<Secret>),
    /// A config.
    Config(Arc<Config>),
    /// The cluster object.
    Cluster(Arc<Cluster>),
}

impl Changed {
    /// The object's id.
    pub fn id(&self) -> &str {
        match self {
            Changed::Node(x) => &x.id,
            Changed::Service(x) => &x.id,
            Changed::Task(x) => &x.id,
            Changed::Network(x) => &x.id,
            Changed::Secret(x) => &x.id,
            Changed::Config(x) => &x.id,
            Changed::Cluster(x) => &x.id,
        }
    }
}

/// The kinds of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Nodes.
    Node,
    /// Services.
    Service,
    /// Tasks.
    Task,
    /// Networks.
    Network,
    /// Secrets.
    Secret,
    /// Configs.
    Config,
    /// The cluster object (one).
    Cluster,
}

impl Kind {
    /// The kind's name, as messages and `WatchRequest.kinds` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
            Kind::Cluster => "cluster",
        }
    }

    /// Whether names are unique within the kind (Docker's rule: services,
    /// networks, secrets, configs and the cluster; not nodes or tasks).
    pub fn unique_names(self) -> bool {
        !matches!(self, Kind::Node | Kind::Task)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An object kind the store keeps in a table.
pub trait Stored: Clone + Sized + 'static {
    /// Its kind.
    const KIND: Kind;
    /// Its id.
    fn id(&self) -> &str;
    /// Its user-given name ("" for tasks and unnamed nodes).
    fn name(&self) -> &str;
    /// Its meta (version, timestamps).
    fn meta(&self) -> Option<&Meta>;
    /// Its meta, for the store to stamp.
    fn meta_mut(&mut self) -> &mut Meta;
    /// Wraps it as an [`Object`].
    fn into_object(self) -> Object;
    /// Wraps it, shared, for an event.
    fn changed(this: Arc<Self>) -> Changed;
    /// Unwraps an [`Object`] of this kind.
    fn from_object(object: &Object) -> Option<&Self>;
    /// Its table.
    fn table(tables: &Tables) -> &Table<Self>;
    /// Its table, for writes.
    fn table_mut(tables: &mut Tables) -> &mut Table<Self>;
    /// Its unique names (`None`: names of this kind need not be unique).
    fn names(tables: &Tables) -> Option<&Names<Self>>;
    /// Its unique names, for writes.
    fn names_mut(tables: &mut Tables) -> Option<&mut Names<Self>>;
    /// Its version (0 for an object never stored).
    fn version(&self) -> u64 {
        self.meta().map_or(0, |m| m.version)
    }
}

macro_rules! stored {
    ($ty:ty, $kind:ident, $field:ident, names: $names:ident, |$o:ident| $name:expr) => {
        stored!($ty, $kind, $field, |$o| $name, {
            fn names(tables: &Tables) -> Option<&Names<Self>> {
                Some(&tables.$names)
            }
            fn names_mut(tables: &mut Tables) -> Option<&mut Names<Self>> {
                Some(&mut tables.$names)
            }
        });
    };
    ($ty:ty, $kind:ident, $field:ident, |$o:ident| $name:expr) => {
        stored!($ty, $kind, $field, |$o| $name, {
            fn names(_: &Tables) -> Option<&Names<Self>> {
                None
            }
            fn names_mut(_: &mut Tables) -> Option<&mut Names<Self>> {
                None
            }
        });
    };
    ($ty:ty, $kind:ident, $field:ident, |$o:ident| $name:expr, { $($names:item)* }) => {
        impl Stored for $ty {
            const KIND: Kind = Kind::$kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                let $o = self;
                $name
            }
            fn meta(&self) -> Option<&Meta> {
                self.meta.as_ref()
            }
            fn meta_mut(&mut self) -> &mut Meta {
                self.meta.get_or_insert_with(Meta::default)
            }
            fn into_object(self) -> Object {
                // Boxed or not, as the generated oneof has it.
                Target::$kind(self.into())
            }
            fn changed(this: Arc<Self>) -> Changed {
                Changed::$kind(this)
            }
            fn from_object(object: &Object) -> Option<&Self> {
                match object {
                    Target::$kind(x) => {
                        let x: &Self = x;
                        Some(x)
                    }
                    _ => None,
                }
            }
            fn table(tables: &Tables) -> &Table<Self> {
                &tables.$field
            }
            fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
                &mut tables.$field
            }
            $($names)*
        }
    };
}

fn spec_name(annotations: Option<&shoal_proto::objects::Annotations>) -> &str {
    annotations.map_or("", |a| a.name.as_str())
}

stored!(Node, Node, nodes, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));
stored!(Service, Service, services, names: service_names, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));
stored!(Task, Task, tasks, |_o| "");
stored!(Network, Network, networks, names: network_names, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));
stored!(Secret, Secret, secrets, names: secret_names, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));
stored!(Config, Config, configs, names: config_names, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));
stored!(Cluster, Cluster, clusters, names: cluster_names, |o| spec_name(
    o.spec.as_ref().and_then(|s| s.annotations.as_ref())
));

/// Calls `$f` with the concrete object inside an [`Object`]: `&T` from a
/// `&Object`, or `T` from an `Object` with `owned`. (The large kinds are
/// boxed in the oneof: see `proto/build.rs`.)
#[macro_export]
#[doc(hidden)]
macro_rules! with_object {
    ($obj:expr, |$x:ident| $body:expr) => {{
        use shoal_proto::objects as o;
        use shoal_proto::store::store_action::Target;
        match $obj {
            Target::Node(x) => {
                let $x: &o::Node = x;
                $body
            }
            Target::Service(x) => {
                let $x: &o::Service = x;
                $body
            }
            Target::Task(x) => {
                let $x: &o::Task = x;
                $body
            }
            Target::Network(x) => {
                let $x: &o::Network = x;
                $body
            }
            Target::Secret($x) => $body,
            Target::Config($x) => $body,
            Target::Cluster(x) => {
                let $x: &o::Cluster = x;
                $body
            }
        }
    }};
    (owned $obj:expr, |$x:ident| $body:expr) => {{
        use shoal_proto::store::store_action::Target;
        match $obj {
            Target::Node(x) => {
                let $x = *x;
                $body
            }
            Target::Service(x) => {
                let $x = *x;
                $body
            }
            Target::Task(x) => {
                let $x = *x;
                $body
            }
            Target::Network(x) => {
                let $x = *x;
                $body
            }
            Target::Secret($x) => $body,
            Target::Config($x) => $body,
            Target::Cluster(x) => {
                let $x = *x;
                $body
            }
        }
    }};
}

/// The kind of an [`Object`].
pub fn kind_of(object: &Object) -> Kind {
    crate::with_object!(object, |x| kind_of_stored(x))
}

fn kind_of_stored<T: Stored>(_: &T) -> Kind {
    T::KIND
}

/// The id of an [`Object`].
pub fn id_of(object: &Object) -> &str {
    crate::with_object!(object, |x| x.id())
}
