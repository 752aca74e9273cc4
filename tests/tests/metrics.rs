//! `shoal daemon --metrics-addr` on three managers: every daemon serves
//! Prometheus's text format on `/metrics`, which `promtool check metrics`
//! accepts and this test parses strictly
//! (a malformed line, an untyped sample or a histogram whose buckets do
//! not add up fails it). Scaling a service moves the task gauges, the
//! scheduler's passes and the proposals; killing the leader moves the
//! survivors' leader changes and Raft term.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use shoal_tests::{Cluster, eventually};

/// Each host is a network namespace of its own: one address serves all.
const METRICS_ADDR: &str = "127.0.0.1:9323";

/// One scrape: every sample's value by its series (name and labels, as
/// printed), and each family's type.
#[derive(Debug)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn get(&self, series: &str) -> anyhow::Result<f64> {
        self.samples
            .get(series)
            .copied()
            .with_context(|| format!("no {series} in {:?}", self.samples.keys()))
    }

    fn has_family(&self, family: &str) -> bool {
        self.types.contains_key(family)
    }
}

/// Whether `name` is a Prometheus metric or label name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks `{k="v",...}` and answers the pairs.
fn labels(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .with_context(|| format!("labels {text:?}"))?;
    let mut pairs = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("label without =\"")?;
        ensure!(valid_name(key), "label name {key:?}");
        // Values here are plain words: no escapes to follow.
        let (value, after) = after.split_once('"').context("unterminated label value")?;
        pairs.push((key.to_string(), value.to_string()));
        rest = after.strip_prefix(',').unwrap_or(after);
        ensure!(
            after.is_empty() || after.starts_with(','),
            "junk after a label: {after:?}"
        );
    }
    Ok(pairs)
}

/// Parses the text exposition format (version 0.0.4), strictly: every
/// sample belongs to a family with HELP and TYPE lines before it, names
/// carry Shoal's prefix and Prometheus's suffixes, no series repeats, and
/// every histogram's `+Inf` bucket equals its count.
fn parse(text: &str) -> anyhow::Result<Scrape> {
    let mut helped = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            ensure!(valid_name(name), "HELP for {name:?}");
            helped.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').context("TYPE without a type")?;
            ensure!(helped.contains(name), "TYPE before HELP for {name}");
            ensure!(
                name.starts_with("shoal_"),
                "{name} without the shoal_ prefix"
            );
            ensure!(
                matches!(kind, "counter" | "gauge" | "histogram"),
                "{name} is a {kind}"
            );
            ensure!(
                (kind == "counter") == name.ends_with("_total"),
                "{name}: counters, and only they, end in _total"
            );
            let first = types.insert(name.to_string(), kind.to_string());
            ensure!(first.is_none(), "{name} typed twice");
        } else {
            ensure!(!line.is_empty() && !line.starts_with('#'), "line {line:?}");
            let (series, value) = line.rsplit_once(' ').context("sample without a value")?;
            let (name, label_text) = match series.find('{') {
                Some(at) => series.split_at(at),
                None => (series, ""),
            };
            ensure!(valid_name(name), "sample name {name:?}");
            let pairs = if label_text.is_empty() {
                Vec::new()
            } else {
                labels(label_text)?
            };
            // The sample's own name, or a histogram's with its suffix off.
            let family = std::iter::once(name)
                .chain(
                    ["_bucket", "_sum", "_count"]
                        .map(|x| name.strip_suffix(x))
                        .into_iter()
                        .flatten(),
                )
                .find(|f| types.contains_key(*f))
                .with_context(|| format!("sample {name} of no typed family"))?;
            let kind = &types[family];
            if kind == "histogram" {
                ensure!(name != family, "histogram {family} sample without a suffix");
                ensure!(
                    name.ends_with("_bucket") == pairs.iter().any(|(k, _)| k == "le"),
                    "{series}: le goes with buckets"
                );
            } else {
                ensure!(name == family, "{series} in family {family}");
            }
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().with_context(|| format!("value of {series}"))?,
            };
            ensure!(
                samples.insert(series.to_string(), value).is_none(),
                "{series} twice"
            );
        }
    }
    for (series, count) in samples.iter().filter(|(s, _)| {
        let name = s.split('{').next().unwrap_or_default();
        name.ends_with("_count")
            && types
                .get(name.trim_end_matches("_count"))
                .is_some_and(|t| t == "histogram")
    }) {
        let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        let bucket = match labels.strip_suffix('}') {
            Some(open) => format!(
                "{}_bucket{open},le=\"+Inf\"}}",
                name.trim_end_matches("_count")
            ),
            None => format!("{}_bucket{{le=\"+Inf\"}}", name.trim_end_matches("_count")),
        };
        let inf = samples
            .get(&bucket)
            .with_context(|| format!("no {bucket}"))?;
        ensure!(inf == count, "{bucket} is {inf}, {series} is {count}");
    }
    Ok(Scrape { samples, types })
}

/// GETs host `i`'s `/metrics` from inside its namespace and parses it.
fn scrape(cluster: &Cluster, i: usize) -> anyhow::Result<Scrape> {
    let url = format!("http://{METRICS_ADDR}/metrics");
    let out = cluster
        .exec(i, "curl", &["-sS", "--fail", "-i", &url])
        .ok()
        .with_context(|| format!("GET {url} on node-{i}"))?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP head")?;
    ensure!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "not the text format: {head}"
    );
    promtool_check(body).with_context(|| format!("node-{i}'s metrics"))?;
    parse(body).with_context(|| format!("node-{i}'s metrics:\n{body}"))
}

/// Prometheus's own linter (`promtool check metrics`, Debian's
/// `prometheus` package) on a scrape: names, units, types and help text
/// as Prometheus's conventions want them.
fn promtool_check(body: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("promtool is missing: run deploy/install-deps.sh (Debian package prometheus)")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `n` managers on daemons that serve metrics, all Ready.
fn managers(n: usize) -> anyhow::Result<Cluster> {
    let cluster = Cluster::builder()
        .hosts(n)
        .daemon_arg(&format!("--metrics-addr={METRICS_ADDR}"))
        .start()?;
    // Outside a swarm a daemon serves its build, nothing of a node or manager.
    let alone = scrape(&cluster, 0)?;
    ensure!(alone.has_family("shoal_build_info"), "{alone:?}");
    ensure!(!alone.has_family("shoal_node_tasks"), "{alone:?}");
    ensure!(!alone.has_family("shoal_raft_term"), "{alone:?}");
    cluster.init_swarm(0)?;
    for i in 1..n {
        cluster.join(i, 0, "manager")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(30))?;
    Ok(cluster)
}

/// Tasks running on every host together, as their node metrics say.
fn running_everywhere(cluster: &Cluster, hosts: &[usize]) -> anyhow::Result<f64> {
    hosts
        .iter()
        .map(|&i| scrape(cluster, i)?.get(r#"shoal_node_tasks{state="running"}"#))
        .sum()
}

#[test]
fn metrics_follow_scaling_and_a_leader_kill_on_three_managers() -> anyhow::Result<()> {
    let mut cluster = managers(3)?;
    let all = [0, 1, 2];
    let leader = cluster.leader(0)?;

    // Every manager shows its Raft state and the store; one leads, and
    // every node's session is on the leader's dispatcher.
    eventually("three managers agree", Duration::from_secs(20), || {
        let mut leaders = 0.0;
        for i in all {
            let m = scrape(&cluster, i)?;
            leaders += m.get("shoal_raft_is_leader")?;
            ensure!(m.get("shoal_raft_members")? == 3.0);
            ensure!(m.get(r#"shoal_store_objects{kind="node"}"#)? == 3.0);
            ensure!(m.get("shoal_raft_commit_index")? >= m.get("shoal_raft_applied_index")?);
            let sessions = m.get("shoal_dispatcher_sessions")?;
            let expected = if i == leader { 3.0 } else { 0.0 };
            ensure!(sessions == expected, "node-{i} holds {sessions} sessions");
        }
        ensure!(leaders == 1.0, "{leaders} leaders");
        Ok(())
    })?;

    cluster
        .shoal(
            0,
            &[
                "service", "create", "-d", "--name", "web", "busybox", "sleep", "1000",
            ],
        )
        .ok()?;
    eventually("one task running", Duration::from_secs(30), || {
        let running = running_everywhere(&cluster, &all)?;
        ensure!(running == 1.0, "{running} running");
        Ok(())
    })?;
    let before = scrape(&cluster, leader)?;
    let passes = before.get("shoal_scheduler_passes_total")?;
    let proposals = before.get("shoal_raft_proposal_duration_seconds_count")?;
    let pass_count = "shoal_orchestrator_pass_duration_seconds_count";
    let orchestrated = before.get(pass_count)?;

    cluster
        .shoal(0, &["service", "scale", "-d", "web=6"])
        .ok()?;
    eventually("six tasks running", Duration::from_secs(30), || {
        let running = running_everywhere(&cluster, &all)?;
        ensure!(running == 6.0, "{running} running");
        Ok(())
    })?;
    let after = scrape(&cluster, leader)?;
    ensure!(after.get(r#"shoal_store_objects{kind="task"}"#)? >= 6.0);
    ensure!(after.get(r#"shoal_store_objects{kind="service"}"#)? == 1.0);
    ensure!(after.get("shoal_scheduler_passes_total")? > passes);
    ensure!(after.get("shoal_raft_proposal_duration_seconds_count")? > proposals);
    ensure!(after.get(pass_count)? > orchestrated);
    ensure!(after.get(r#"shoal_scheduler_unschedulable_tasks{reason="resources"}"#)? == 0.0);
    // Every node beats (the first beat a second after its session
    // opened) and applies its network view.
    eventually(
        "every node beats and syncs",
        Duration::from_secs(10),
        || {
            for i in all {
                let m = scrape(&cluster, i)?;
                let beats = m.get("shoal_agent_heartbeats_total")?;
                ensure!(beats > 0.0, "node-{i} sent {beats} heartbeats");
                let syncs = m.get("shoal_dataplane_syncs_total")?;
                ensure!(syncs > 0.0, "node-{i} applied {syncs} network views");
            }
            Ok(())
        },
    )?;
    let starts = r#"shoal_engine_operation_duration_seconds_count{operation="start"}"#;
    let started: f64 = all
        .iter()
        .map(|&i| scrape(&cluster, i)?.get(starts))
        .sum::<anyhow::Result<f64>>()?;
    ensure!(started >= 6.0, "{started} engine starts");

    // Kill -9 the leader: the survivors see a new one, in a new term.
    let survivors: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let seen: Vec<(f64, f64)> = survivors
        .iter()
        .map(|&i| {
            let m = scrape(&cluster, i)?;
            Ok((
                m.get("shoal_raft_leader_changes_total")?,
                m.get("shoal_raft_term")?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    cluster.kill(leader);
    eventually(
        "a new leader in the metrics",
        Duration::from_secs(20),
        || {
            let mut leaders = 0.0;
            for (&i, &(changes, term)) in survivors.iter().zip(&seen) {
                let m = scrape(&cluster, i)?;
                let now = m.get("shoal_raft_leader_changes_total")?;
                ensure!(
                    now > changes,
                    "node-{i} saw {now} leader changes, {changes} before"
                );
                let now = m.get("shoal_raft_term")?;
                ensure!(now > term, "node-{i} is in term {now}, {term} before");
                leaders += m.get("shoal_raft_is_leader")?;
            }
            if leaders != 1.0 {
                bail!("{leaders} leaders among the survivors");
            }
            Ok(())
        },
    )?;
    Ok(())
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let good = "# HELP shoal_x_total X.\n# TYPE shoal_x_total counter\nshoal_x_total 1\n\
                # HELP shoal_h_seconds H.\n# TYPE shoal_h_seconds histogram\n\
                shoal_h_seconds_sum{op=\"a\"} 0.5\nshoal_h_seconds_count{op=\"a\"} 2\n\
                shoal_h_seconds_bucket{op=\"a\",le=\"1.0\"} 2\nshoal_h_seconds_bucket{op=\"a\",le=\"+Inf\"} 2\n";
    let scrape = parse(good).expect("a good scrape");
    assert_eq!(scrape.get("shoal_x_total").unwrap(), 1.0);
    for bad in [
        // No TYPE.
        "shoal_x 1\n",
        // A counter without _total.
        "# HELP shoal_x X.\n# TYPE shoal_x counter\nshoal_x 1\n",
        // The +Inf bucket disagrees with the count.
        &good.replace("le=\"+Inf\"} 2", "le=\"+Inf\"} 3"),
        // A repeated series.
        &format!("{good}shoal_x_total 2\n"),
        // A broken label.
        "# HELP shoal_g G.\n# TYPE shoal_g gauge\nshoal_g{a=b} 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted:\n{bad}");
    }
}
