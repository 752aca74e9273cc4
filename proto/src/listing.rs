//! Lists travel in chunks. Every list of the control API is a stream of
//! responses of about [`CHUNK_BYTES`] each, so a cluster of any size stays
//! under gRPC's per-message limit (4 MB by default): the server splits a
//! list with [`Chunked::split`], the client joins it with [`collect`] (or
//! [`Joined::joined`] on the call).

use prost::Message;
use tonic::{Status, Streaming};

use crate::control::*;

/// The target size of one chunk. An object larger than this travels alone.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// A list response that can be cut into chunks and joined again.
pub trait Chunked: Message + Default + Sized {
    /// Cuts the list into chunks of at most `max` encoded bytes each (one
    /// object at least); an empty list is one empty chunk.
    fn split(self, max: usize) -> Vec<Self>;
    /// Appends the objects of a later chunk.
    fn join(&mut self, next: Self);
}

/// Groups `items` so that each group's encoded size stays under `max`
/// (an item larger than `max` is a group of its own). Lists use it, and
/// so does anything else sent in parts (a worker's status reports).
pub fn groups<T: Message>(items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let mut groups = vec![Vec::new()];
    let mut size = 0;
    for item in items {
        let len = item.encoded_len() + 8;
        let current = groups.last_mut().expect("never empty");
        if !current.is_empty() && size + len > max {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        groups.last_mut().expect("never empty").push(item);
    }
    groups
}

macro_rules! chunked {
    ($($response:ident . $field:ident),* $(,)?) => {$(
        impl Chunked for $response {
            fn split(self, max: usize) -> Vec<Self> {
                groups(self.$field, max)
                    .into_iter()
                    .map(|$field| $response { $field })
                    .collect()
            }
            fn join(&mut self, next: Self) {
                self.$field.extend(next.$field);
            }
        }
    )*};
}

chunked!(
    ListNodesResponse.nodes,
    ListTasksResponse.tasks,
    ListNetworksResponse.networks,
    ListSecretsResponse.secrets,
    ListConfigsResponse.configs,
);

/// Services travel with their counts (`status`), cut at the same places.
impl Chunked for ListServicesResponse {
    fn split(self, max: usize) -> Vec<Self> {
        let mut statuses = self.statuses.into_iter();
        groups(self.services, max)
            .into_iter()
            .map(|services| ListServicesResponse {
                statuses: statuses.by_ref().take(services.len()).collect(),
                services,
            })
            .collect()
    }
    fn join(&mut self, next: Self) {
        self.services.extend(next.services);
        self.statuses.extend(next.statuses);
    }
}

/// Reads every chunk of a list stream into one response.
pub async fn collect<T: Chunked>(mut stream: Streaming<T>) -> Result<T, Status> {
    let mut all = T::default();
    while let Some(chunk) = stream.message().await? {
        all.join(chunk);
    }
    Ok(all)
}

/// A stream message that may travel in parts (`more` set on all but the
/// last): a node's assignments and its network view, whose size grows with
/// the cluster.
pub trait Parted: Message + Sized {
    /// Whether another part follows.
    fn more(&self) -> bool;
    /// Cuts the message into parts of about `max` encoded bytes.
    fn parts(self, max: usize) -> Vec<Self>;
    /// Appends the next part.
    fn join(&mut self, next: Self);
}

impl Parted for crate::dispatcher::AssignmentsMessage {
    fn more(&self) -> bool {
        self.more
    }
    fn parts(self, max: usize) -> Vec<Self> {
        let groups = groups(self.changes, max);
        let last = groups.len() - 1;
        groups
            .into_iter()
            .enumerate()
            .map(|(i, changes)| crate::dispatcher::AssignmentsMessage {
                changes,
                more: i < last,
                ..self
            })
            .collect()
    }
    fn join(&mut self, next: Self) {
        self.changes.extend(next.changes);
        self.more = next.more;
    }
}

impl Parted for crate::dispatcher::NetworkView {
    fn more(&self) -> bool {
        self.more
    }
    fn parts(self, max: usize) -> Vec<Self> {
        // Networks and sandboxes are few; tasks and services grow.
        let tasks = groups(self.tasks, max / 2);
        let services = groups(self.services, max / 2);
        let n = tasks.len().max(services.len());
        let mut tasks = tasks.into_iter();
        let mut services = services.into_iter();
        (0..n)
            .map(|i| crate::dispatcher::NetworkView {
                networks: if i == 0 {
                    self.networks.clone()
                } else {
                    Vec::new()
                },
                ingress_sandboxes: if i == 0 {
                    self.ingress_sandboxes.clone()
                } else {
                    Vec::new()
                },
                tasks: tasks.next().unwrap_or_default(),
                services: services.next().unwrap_or_default(),
                node_addr: self.node_addr.clone(),
                data_path_port: self.data_path_port,
                more: i + 1 < n,
            })
            .collect()
    }
    fn join(&mut self, next: Self) {
        self.networks.extend(next.networks);
        self.ingress_sandboxes.extend(next.ingress_sandboxes);
        self.tasks.extend(next.tasks);
        self.services.extend(next.services);
        self.more = next.more;
    }
}

/// A list call, joined: `control.list_tasks(request).joined().await?`.
pub trait Joined<T> {
    /// Awaits the call and every chunk of its answer.
    fn joined(self) -> impl Future<Output = Result<T, Status>> + Send;
}

impl<F, T> Joined<T> for F
where
    F: Future<Output = Result<tonic::Response<Streaming<T>>, Status>> + Send,
    T: Chunked + Send + 'static,
{
    async fn joined(self) -> Result<T, Status> {
        collect(self.await?.into_inner()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Annotations, Service, Task};

    #[test]
    fn lists_split_under_the_limit_and_join_whole() {
        let tasks: Vec<Task> = (0..1000)
            .map(|i| Task {
                id: format!("task-{i:04}-{}", "x".repeat(200)),
                ..Default::default()
            })
            .collect();
        let chunks = ListTasksResponse {
            tasks: tasks.clone(),
        }
        .split(20_000);
        assert!(chunks.len() > 10);
        assert!(chunks.iter().all(|c| c.encoded_len() <= 20_000));
        let mut joined = ListTasksResponse::default();
        chunks.into_iter().for_each(|c| joined.join(c));
        assert_eq!(joined.tasks, tasks);
        assert_eq!(ListTasksResponse::default().split(10).len(), 1);
    }

    #[test]
    fn assignments_travel_in_parts_and_join_whole() {
        use crate::dispatcher::{Assignment, AssignmentChange, AssignmentsMessage, assignment};
        let changes: Vec<AssignmentChange> = (0..300)
            .map(|i| AssignmentChange {
                assignment: Some(Assignment {
                    item: Some(assignment::Item::Task(Task {
                        id: format!("t{i}-{}", "x".repeat(100)),
                        ..Default::default()
                    })),
                }),
                action: 0,
            })
            .collect();
        let message = AssignmentsMessage {
            r#type: 0,
            applies_to: 3,
            results_in: 4,
            changes: changes.clone(),
            more: false,
        };
        let parts = message.clone().parts(4_000);
        assert!(parts.len() > 5);
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p.more && p.results_in == 4)
        );
        let mut joined = parts[0].clone();
        for p in parts.into_iter().skip(1) {
            joined.join(p);
        }
        assert_eq!(joined, message);
    }

    #[test]
    fn a_node_full_of_status_reports_sends_them_under_the_limit() {
        use crate::dispatcher::{TaskStatusUpdate, UpdateTaskStatusRequest};
        use crate::objects::TaskStatus;
        // 100,000 tasks' reports with a status message each: about 10 MB.
        let updates: Vec<TaskStatusUpdate> = (0..100_000)
            .map(|i| TaskStatusUpdate {
                task_id: format!("{i:025}"),
                status: Some(TaskStatus {
                    message: "started".repeat(8),
                    ..Default::default()
                }),
            })
            .collect();
        let parts = groups(updates.clone(), CHUNK_BYTES);
        assert!(parts.len() > 5);
        for part in &parts {
            let request = UpdateTaskStatusRequest {
                session_id: "s".repeat(25),
                updates: part.clone(),
            };
            assert!(request.encoded_len() < 4 << 20);
        }
        assert_eq!(parts.concat(), updates);
    }

    #[test]
    fn service_counts_stay_beside_their_services() {
        let services: Vec<Service> = (0..50)
            .map(|i| Service {
                id: format!("s{i}"),
                spec: Some(crate::objects::ServiceSpec {
                    annotations: Some(Annotations {
                        name: "n".repeat(100),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let statuses: Vec<ServiceCounts> = (0..50)
            .map(|i| ServiceCounts {
                running_tasks: i,
                ..Default::default()
            })
            .collect();
        let chunks = ListServicesResponse { services, statuses }.split(1000);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert_eq!(chunk.services.len(), chunk.statuses.len());
            for (s, c) in chunk.services.iter().zip(&chunk.statuses) {
                assert_eq!(s.id, format!("s{}", c.running_tasks));
            }
        }
    }
}
