//! Bounds on what workers write into the store through the dispatcher: a
//! node's description when its session opens and its tasks' status
//! reports. Both go into the Raft log as sent, so one worker could grow
//! the log (and every manager's memory) without limit; here each string is
//! cut to a size no honest node reaches, and what was cut is logged.
//!
//! Cutting rather than refusing: a refused session or report would only be
//! sent again, and the node would drop out of the cluster over its host
//! name; a cut one keeps the node working and the store small.

use shoal_proto::objects::{NodeDescription, Task, TaskStatus};

/// A task status message ("started", "preparing"): 1 KiB.
pub const MAX_STATUS_MESSAGE: usize = 1024;
/// A task error (an engine's or a pull's message): 4 KiB.
pub const MAX_STATUS_ERR: usize = 4 * 1024;
/// A container id, a port's name: far more than Docker's 64 characters.
const MAX_ID: usize = 256;
/// A host name: DNS's 253, rounded up.
const MAX_HOSTNAME: usize = 256;
/// Platform strings, engine kind and version.
const MAX_SHORT: usize = 256;
/// Engine labels: how many, and the size of each key and value.
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY: usize = 256;
const MAX_LABEL_VALUE: usize = 1024;

/// Cuts `s` to at most `max` bytes on a character boundary, ending it
/// with `…` when it was cut. Whether it was.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    true
}

/// Bounds a node's description in place; the names of the fields that
/// were cut (empty when none was).
pub fn description(d: &mut NodeDescription) -> Vec<&'static str> {
    let mut cuts = Vec::new();
    let mut bound = |s: &mut String, max, name| {
        if cut(s, max) {
            cuts.push(name);
        }
    };
    bound(&mut d.hostname, MAX_HOSTNAME, "hostname");
    if let Some(p) = d.platform.as_mut() {
        bound(&mut p.architecture, MAX_SHORT, "platform.architecture");
        bound(&mut p.os, MAX_SHORT, "platform.os");
    }
    if let Some(e) = d.engine.as_mut() {
        bound(&mut e.kind, MAX_SHORT, "engine.kind");
        bound(&mut e.version, MAX_SHORT, "engine.version");
        let too_many = e.labels.len() > MAX_LABELS;
        let too_long = e
            .labels
            .iter()
            .any(|(k, v)| k.len() > MAX_LABEL_KEY || v.len() > MAX_LABEL_VALUE);
        if too_many || too_long {
            // Keys are cut too, so two may become one: the first wins.
            let mut kept = std::collections::BTreeMap::new();
            for (mut k, mut v) in std::mem::take(&mut e.labels).into_iter().take(MAX_LABELS) {
                cut(&mut k, MAX_LABEL_KEY);
                cut(&mut v, MAX_LABEL_VALUE);
                kept.entry(k).or_insert(v);
            }
            e.labels = kept;
            cuts.push("engine.labels");
        }
    }
    cuts
}

/// Bounds a status report for `task` in place; the names of the fields
/// that were cut. Published ports are kept up to as many as the task's
/// endpoint has (the only ones it can publish).
pub fn status(task: &Task, s: &mut TaskStatus) -> Vec<&'static str> {
    let mut cuts = Vec::new();
    if cut(&mut s.message, MAX_STATUS_MESSAGE) {
        cuts.push("message");
    }
    if cut(&mut s.err, MAX_STATUS_ERR) {
        cuts.push("err");
    }
    if let Some(c) = s.container.as_mut()
        && cut(&mut c.container_id, MAX_ID)
    {
        cuts.push("container.container_id");
    }
    let ports = task.endpoint.as_ref().map_or(0, |e| {
        e.ports
            .len()
            .max(e.spec.as_ref().map_or(0, |s| s.ports.len()))
    });
    if s.ports.len() > ports {
        s.ports.truncate(ports);
        cuts.push("ports");
    }
    if s.ports.iter_mut().any(|p| cut(&mut p.name, MAX_ID)) {
        for p in &mut s.ports {
            cut(&mut p.name, MAX_ID);
        }
        cuts.push("ports.name");
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::{
        ContainerStatus, Endpoint, EngineDescription, Platform, PortConfig,
    };

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        let mut s = "é".repeat(600); // 1200 bytes
        assert!(cut(&mut s, MAX_STATUS_MESSAGE));
        assert!(
            s.len() <= MAX_STATUS_MESSAGE && s.ends_with('…'),
            "{}",
            s.len()
        );
        let mut short = "started".to_string();
        assert!(!cut(&mut short, MAX_STATUS_MESSAGE));
        assert_eq!(short, "started");
    }

    #[test]
    fn a_bloated_description_is_cut() {
        let mut d = NodeDescription {
            hostname: "h".repeat(1 << 20),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "o".repeat(10_000),
            }),
            engine: Some(EngineDescription {
                kind: "process".into(),
                version: String::new(),
                labels: (0..10_000)
                    .map(|i| (format!("k{i}"), "v".repeat(100_000)))
                    .collect(),
            }),
            ..Default::default()
        };
        let cuts = description(&mut d);
        assert_eq!(cuts, vec!["hostname", "platform.os", "engine.labels"]);
        assert!(prost::Message::encoded_len(&d) < 128 * 1024);
        assert_eq!(d.platform.as_ref().unwrap().architecture, "x86_64");
        let labels = &d.engine.as_ref().unwrap().labels;
        assert_eq!(labels.len(), MAX_LABELS);
        assert!(labels.values().all(|v| v.len() <= MAX_LABEL_VALUE));

        let mut honest = NodeDescription {
            hostname: "node-1".into(),
            ..Default::default()
        };
        assert!(description(&mut honest).is_empty());
        assert_eq!(honest.hostname, "node-1");
    }

    #[test]
    fn a_bloated_status_is_cut() {
        let task = Task {
            endpoint: Some(Endpoint {
                ports: vec![PortConfig::default()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut s = TaskStatus {
            message: "m".repeat(1 << 20),
            err: "e".repeat(1 << 20),
            container: Some(ContainerStatus {
                container_id: "c".repeat(1 << 20),
                ..Default::default()
            }),
            ports: vec![PortConfig::default(); 10_000],
            ..Default::default()
        };
        let cuts = status(&task, &mut s);
        assert_eq!(
            cuts,
            vec!["message", "err", "container.container_id", "ports"]
        );
        assert!(s.message.len() <= MAX_STATUS_MESSAGE);
        assert!(s.err.len() <= MAX_STATUS_ERR);
        assert_eq!(s.ports.len(), 1);
        let mut ok = TaskStatus {
            message: "started".into(),
            ..Default::default()
        };
        assert!(status(&task, &mut ok).is_empty());
    }
}
