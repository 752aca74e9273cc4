//! `shoal daemon --web-addr`, seen in a real headless browser on the
//! manager's host: before the swarm exists the page says the node is no
//! manager; then it shows a column per node and a card per running task,
//! follows `service scale` within seconds without a reload, and its node
//! and service filters (also from the URL) narrow the board.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::Value;
use shoal_tests::browser::{Browser, Page};
use shoal_tests::{Cluster, eventually};

const WEB: &str = "http://127.0.0.1:8080/";

/// The names of the node columns the page shows.
const COLUMNS: &str = "[...document.querySelectorAll('.column')]
    .filter(c => c.getClientRects().length > 0)
    .map(c => c.dataset.nodeName)";

/// Every card shown: [task id, node name, service, state].
const CARDS: &str = "[...document.querySelectorAll('.column .card')]
    .filter(c => c.getClientRects().length > 0)
    .map(c => [c.dataset.taskId, c.closest('.column').dataset.nodeName,
               c.dataset.service, c.dataset.state])";

/// A card as (task id, node name, service, state).
type Card = (String, String, String, String);

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn columns(browser: &mut Browser, page: &Page) -> anyhow::Result<Vec<String>> {
    Ok(strings(&browser.eval(page, COLUMNS)?))
}

fn cards(browser: &mut Browser, page: &Page) -> anyhow::Result<Vec<Card>> {
    let v = browser.eval(page, CARDS)?;
    Ok(v.as_array()
        .map(|a| a.iter().map(strings).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| match &c[..] {
            [id, node, service, state] => {
                Some((id.clone(), node.clone(), service.clone(), state.clone()))
            }
            _ => None,
        })
        .collect())
}

fn of(cards: &[Card], service: &str) -> usize {
    cards.iter().filter(|c| c.2 == service).count()
}

/// Scales `web` to `n` and waits until the page shows `n` of its cards;
/// returns how long that took.
fn scale(
    cluster: &Cluster,
    browser: &mut Browser,
    page: &Page,
    n: usize,
) -> anyhow::Result<Duration> {
    cluster
        .shoal(0, &["service", "scale", "-d", &format!("web={n}")])
        .ok()?;
    let scaled = Instant::now();
    eventually(
        &format!("{n} web cards without a reload"),
        Duration::from_secs(2),
        || {
            let shown = of(&cards(browser, page)?, "web");
            ensure!(shown == n, "{shown} web cards");
            Ok(())
        },
    )?;
    Ok(scaled.elapsed())
}

#[test]
fn the_web_view_shows_the_cluster_live_in_a_browser() -> anyhow::Result<()> {
    let cluster = Cluster::builder()
        .hosts(3)
        .daemon_arg("--web-addr=127.0.0.1:8080")
        .start()?;
    let mut browser = Browser::launch(&cluster, 0)?;
    let page = browser.open(WEB)?;

    // Outside a swarm the page says why it has nothing to show.
    let notice = "(n => n.hidden ? '' : n.textContent)(document.getElementById('notice'))";
    eventually(
        "the page says node-0 is no manager",
        Duration::from_secs(10),
        || {
            let text = browser.eval(&page, notice)?;
            ensure!(
                text.as_str().unwrap_or("").contains("not a swarm manager"),
                "notice: {text}"
            );
            Ok(())
        },
    )?;
    // Reloading would forget this.
    browser.eval(&page, "window.loadedOnce = true")?;

    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.join(2, 0, "worker")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(30))?;

    // A worker's data endpoint answers 503 with Docker's message.
    let out = cluster
        .exec(
            1,
            "curl",
            &[
                "-s",
                "-w",
                "\n%{http_code}",
                "http://127.0.0.1:8080/api/state",
            ],
        )
        .ok()?;
    let (body, code) = out.trim().rsplit_once('\n').unwrap_or(("", ""));
    assert_eq!(code, "503", "{out}");
    assert!(body.contains("not a swarm manager"), "{body}");

    // The page recovers by itself: a column per node.
    eventually("a column per node", Duration::from_secs(20), || {
        let mut shown = columns(&mut browser, &page)?;
        shown.sort();
        ensure!(
            shown == ["node-0", "node-1", "node-2"],
            "columns: {shown:?}"
        );
        Ok(())
    })?;

    for args in [
        &["--replicas", "4", "busybox", "sleep", "1000"][..],
        &["--mode", "global", "busybox", "sleep", "1000"][..],
    ] {
        let name = if args[0] == "--mode" { "agent" } else { "web" };
        let mut create = vec!["service", "create", "-d", "--name", name];
        create.extend_from_slice(args);
        cluster.shoal(0, &create).ok()?;
    }
    // Every running task has a card, in its node's column.
    let same_as_the_cli = |browser: &mut Browser, web: usize| -> anyhow::Result<()> {
        let shown = cards(browser, &page)?;
        for (service, want) in [("web", web), ("agent", 3)] {
            let running = cluster.running_tasks(service)?;
            ensure!(running.len() == want, "{service}: {running:?}");
            let cli: BTreeSet<(String, String)> = running
                .into_iter()
                .map(|(id, host)| (id, cluster.hostname(host).to_string()))
                .collect();
            let page: BTreeSet<(String, String)> = shown
                .iter()
                .filter(|c| c.2 == service && c.3 == "running")
                .map(|c| (c.0.clone(), c.1.clone()))
                .collect();
            ensure!(page == cli, "{service}: page {page:?}, CLI {cli:?}");
            ensure!(of(&shown, service) == want, "cards: {shown:?}");
        }
        Ok(())
    };
    eventually("a card per running task", Duration::from_secs(60), || {
        same_as_the_cli(&mut browser, 4)
    })?;

    let up = scale(&cluster, &mut browser, &page, 6)?;
    eventually(
        "6 running web tasks on the page",
        Duration::from_secs(60),
        || same_as_the_cli(&mut browser, 6),
    )?;
    let down = scale(&cluster, &mut browser, &page, 2)?;
    eprintln!("the page followed the scale in {up:?} (up) and {down:?} (down)");
    assert_eq!(
        browser.eval(&page, "window.loadedOnce")?,
        Value::Bool(true),
        "the page was reloaded"
    );

    // The node filter hides the other columns and goes into the URL.
    browser.eval(
        &page,
        "(s => { s.value = 'node-1'; s.dispatchEvent(new Event('change')); })
         (document.getElementById('node-filter'))",
    )?;
    eventually("only node-1's column", Duration::from_secs(5), || {
        ensure!(columns(&mut browser, &page)? == ["node-1"]);
        let shown = cards(&mut browser, &page)?;
        ensure!(shown.iter().all(|c| c.1 == "node-1"), "{shown:?}");
        ensure!(of(&shown, "agent") == 1, "{shown:?}");
        let search = browser.eval(&page, "location.search")?;
        ensure!(search == "?node=node-1", "{search}");
        Ok(())
    })?;

    // Filters come from the URL too: node-2, web only.
    let filtered = browser.open(&format!("{WEB}?node=node-2&service=web"))?;
    eventually(
        "node-2's web cards from the URL",
        Duration::from_secs(10),
        || {
            ensure!(columns(&mut browser, &filtered)? == ["node-2"]);
            let shown = cards(&mut browser, &filtered)?;
            ensure!(
                shown.iter().all(|c| c.1 == "node-2" && c.2 == "web"),
                "{shown:?}"
            );
            let picked = browser.eval(
                &filtered,
                "[document.getElementById('node-filter').value,
                  document.getElementById('service-filter').value]",
            )?;
            ensure!(strings(&picked) == ["node-2", "web"], "{picked}");
            Ok(())
        },
    )?;
    Ok(())
}
