//! The node ids the cluster port refuses (removed nodes), and the open
//! connections that must close when a node joins them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;

/// Node ids whose certificates are refused at the handshake, shared
/// between the manager (which updates it when a node is removed) and the
/// server config. Cloning shares the same set. Open connections follow it
/// too: each one [`DenyList::watch`]es its node, and denying the node
/// cancels those tokens, so the connections close at once.
#[derive(Clone, Default)]
pub struct DenyList(Arc<DenyInner>);

#[derive(Default)]
struct DenyInner {
    denied: RwLock<HashSet<String>>,
    /// Per node id, the parent of its open connections' tokens.
    open: Mutex<HashMap<String, CancellationToken>>,
}

impl DenyList {
    /// An empty list.
    pub fn new() -> DenyList {
        DenyList::default()
    }

    /// Refuse `node_id` from the next handshake on, and close its open
    /// connections.
    pub fn deny(&self, node_id: impl Into<String>) {
        let node_id = node_id.into();
        self.0
            .denied
            .write()
            .expect("deny list lock")
            .insert(node_id.clone());
        self.close([node_id.as_str()]);
    }

    /// Accept `node_id` again; returns whether it was denied.
    pub fn allow(&self, node_id: &str) -> bool {
        self.0
            .denied
            .write()
            .expect("deny list lock")
            .remove(node_id)
    }

    /// Replace the whole set (e.g. after reloading the store), closing
    /// the open connections of every node now in it.
    pub fn replace(&self, node_ids: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = node_ids.into_iter().collect();
        *self.0.denied.write().expect("deny list lock") = set.clone();
        self.close(set.iter().map(String::as_str));
    }

    /// Whether `node_id` is refused.
    pub fn is_denied(&self, node_id: &str) -> bool {
        self.0
            .denied
            .read()
            .expect("deny list lock")
            .contains(node_id)
    }

    /// A token cancelled when `node_id` is denied (already cancelled if it
    /// is): what ties an open connection's life to its node's standing.
    pub fn watch(&self, node_id: &str) -> CancellationToken {
        let token = self
            .0
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(node_id.to_string())
            .or_default()
            .child_token();
        // Denied meanwhile (or before): `deny` may have missed this token.
        if self.is_denied(node_id) {
            token.cancel();
        }
        token
    }

    fn close<'a>(&self, node_ids: impl IntoIterator<Item = &'a str>) {
        let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        for id in node_ids {
            if let Some(parent) = open.remove(id) {
                parent.cancel();
            }
        }
    }
}

impl fmt::Debug for DenyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.denied.read().map(|s| s.len()).unwrap_or(0);
        write!(f, "DenyList({n} node ids)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_list_is_shared_between_clones() {
        let a = DenyList::new();
        let b = a.clone();
        a.deny("node1");
        assert!(b.is_denied("node1"));
        assert!(b.allow("node1"));
        assert!(!a.is_denied("node1"));
        b.replace(["x".to_string(), "y".to_string()]);
        assert!(a.is_denied("y"));
        assert_eq!(format!("{a:?}"), "DenyList(2 node ids)");
    }

    #[test]
    fn denying_a_node_cancels_its_open_connections_only() {
        let list = DenyList::new();
        let (n1, n1_again, n2) = (list.watch("n1"), list.watch("n1"), list.watch("n2"));
        list.deny("n1");
        assert!(n1.is_cancelled() && n1_again.is_cancelled());
        assert!(!n2.is_cancelled());
        // Already denied: a new connection is closed from the start.
        assert!(list.watch("n1").is_cancelled());
        // `replace` (what the manager's store follower calls) closes too.
        list.replace(["n2".to_string()]);
        assert!(n2.is_cancelled());
        assert!(!list.watch("n1").is_cancelled(), "n1 is allowed again");
    }
}
