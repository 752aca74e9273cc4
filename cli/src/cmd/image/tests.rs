//! `image` flags, names as Docker shows them, `ls` rows and filters,
//! Docker-shaped inspect, pull progress, rm / prune / load reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use shoal_proto::local::{
    Image, ImageConfig, ImagePruneResponse, ImagePullDone, ImagePullLayer, ImagePullResolved,
    ImageRemoveResponse,
};

use super::pull::{PullScreen, bar, has_tag_or_digest};
use super::view::{self, familiar, glob, human_size, split_tag};
use super::*;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: ImageCommand,
}

fn parse(args: &[&str]) -> Result<ImageCommand, clap::Error> {
    Cli::try_parse_from(std::iter::once("image").chain(args.iter().copied())).map(|c| c.cmd)
}

const NOW: u64 = 1_700_000_000;

fn image(id_char: char, tags: &[&str], digests: &[&str], age_secs: u64) -> Image {
    Image {
        id: format!("sha256:{}", id_char.to_string().repeat(64)),
        repo_tags: tags.iter().map(|s| s.to_string()).collect(),
        repo_digests: digests.iter().map(|s| s.to_string()).collect(),
        size: 4_261_000,
        created: Some(prost_types::Timestamp {
            seconds: (NOW - age_secs) as i64,
            nanos: 0,
        }),
        layers: vec![format!("sha256:{}", "1".repeat(64))],
        config: Some(ImageConfig {
            cmd: vec!["sh".into()],
            labels: [("team".to_string(), "web".to_string())].into(),
            ..ImageConfig::default()
        }),
        tasks: Vec::new(),
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

#[test]
fn flags_parse_like_dockers() {
    let ImageCommand::Pull(p) = parse(&["pull", "-q", "busybox:1"]).unwrap() else {
        panic!("pull")
    };
    assert!(p.quiet && p.name == "busybox:1");
    let ImageCommand::Ls(l) = parse(&["ls", "-q", "--digests", "-f", "dangling=true"]).unwrap()
    else {
        panic!("ls")
    };
    assert!(l.quiet && l.digests && l.filter == [("dangling".into(), "true".into())]);
    let ImageCommand::Rm(r) = parse(&["rmi", "-f", "a", "b"]).unwrap() else {
        panic!("rm")
    };
    assert!(r.force && r.images == ["a", "b"]);
    let ImageCommand::Prune(p) = parse(&["prune", "-a", "-f"]).unwrap() else {
        panic!("prune")
    };
    assert!(p.all && p.force);
    let ImageCommand::Load(l) = parse(&["load", "-i", "x.tar"]).unwrap() else {
        panic!("load")
    };
    assert_eq!(l.input.as_deref(), Some("x.tar"));
    assert!(parse(&["rm"]).is_err(), "rm needs an image");
    assert!(parse(&["pull"]).is_err(), "pull needs a name");
}

#[test]
fn names_as_docker_shows_them() {
    assert_eq!(
        familiar("docker.io/library/busybox:latest"),
        "busybox:latest"
    );
    assert_eq!(
        familiar("docker.io/shoal-demo/busybox:1"),
        "shoal-demo/busybox:1"
    );
    assert_eq!(familiar("10.0.0.1:5000/a/web:1"), "10.0.0.1:5000/a/web:1");
    assert_eq!(
        split_tag("10.0.0.1:5000/a/web:1"),
        ("10.0.0.1:5000/a/web", "1")
    );
    assert_eq!(split_tag("10.0.0.1:5000/web"), ("10.0.0.1:5000/web", ""));
    assert!(has_tag_or_digest("reg:5000/web:1") && has_tag_or_digest("web@sha256:ab"));
    assert!(!has_tag_or_digest("reg:5000/web"));
}

#[test]
fn sizes_as_go_units() {
    assert_eq!(human_size(512, 3), "512B");
    assert_eq!(human_size(4_261_000, 3), "4.26MB");
    assert_eq!(human_size(72_800_000, 3), "72.8MB");
    assert_eq!(human_size(1_000, 3), "1kB");
    assert_eq!(human_size(1_048_576, 4), "1.049MB");
    assert_eq!(human_size(0, 4), "0B");
}

#[test]
fn globs_stop_at_slashes() {
    assert!(glob("busybox", "busybox"));
    assert!(glob("busy*", "busybox"));
    assert!(glob("*/web", "demo/web"));
    assert!(!glob("*", "demo/web"));
    assert!(glob("busybox:?", "busybox:1"));
}

#[test]
fn rows_one_per_tag_with_digest_and_none() {
    let d = format!("docker.io/library/busybox@sha256:{}", "d".repeat(64));
    let img = image(
        'a',
        &[
            "docker.io/library/busybox:1",
            "docker.io/library/busybox:latest",
        ],
        &[&d],
        3 * 86400,
    );
    let rows = view::rows(&img, false, now());
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].repository.as_str(), rows[0].tag.as_str()),
        ("busybox", "1")
    );
    assert_eq!(rows[0].digest, format!("sha256:{}", "d".repeat(64)));
    assert_eq!(rows[0].id, "aaaaaaaaaaaa");
    assert_eq!(rows[0].created_since, "3 days ago");
    assert_eq!(rows[0].created_at, "2023-11-11 22:13:20 +0000 UTC");
    assert_eq!(rows[0].size, "4.26MB");
    // Only a digest: its repository, tag <none>; nothing: all <none>.
    let rows = view::rows(&image('b', &[], &[&d], 0), true, now());
    assert_eq!(
        (rows[0].repository.as_str(), rows[0].tag.as_str()),
        ("busybox", "<none>")
    );
    assert_eq!(rows[0].id, format!("sha256:{}", "b".repeat(64)));
    let rows = view::rows(&image('c', &[], &[], 0), false, now());
    assert_eq!(
        (
            rows[0].repository.as_str(),
            rows[0].tag.as_str(),
            rows[0].digest.as_str()
        ),
        ("<none>", "<none>", "<none>")
    );
}

fn filters(list: &[&str]) -> Filters {
    let entries = list.iter().map(|s| parse_filter(s).unwrap()).collect();
    Filters::new(entries, view::FILTER_KEYS).unwrap()
}

#[test]
fn ls_filters_and_tables() {
    let images = [
        image('a', &["docker.io/library/busybox:1"], &[], 100),
        image('b', &["10.0.0.1:5000/demo/web:1"], &[], 10),
        image('c', &[], &[], 5),
    ];
    let all = view::select(&images, &filters(&[]), None, false, now()).unwrap();
    // Newest first.
    let names: Vec<_> = all.iter().map(|r| r.repository.as_str()).collect();
    assert_eq!(names, ["<none>", "10.0.0.1:5000/demo/web", "busybox"]);
    let table = view::render_list(&all[2..], false, false, None).unwrap();
    assert_eq!(
        table,
        "REPOSITORY   TAG       IMAGE ID       CREATED              SIZE\n\
         busybox      1         aaaaaaaaaaaa   About a minute ago   4.26MB\n"
    );
    let dangling = view::select(&images, &filters(&["dangling=true"]), None, false, now()).unwrap();
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0].repository, "<none>");
    let by_ref = view::select(&images, &filters(&["reference=busy*"]), None, false, now()).unwrap();
    assert_eq!(by_ref.len(), 1);
    let by_arg = view::select(&images, &filters(&[]), Some("busybox:1"), false, now()).unwrap();
    assert_eq!(by_arg.len(), 1);
    let by_arg = view::select(&images, &filters(&[]), Some("busybox:2"), false, now()).unwrap();
    assert!(by_arg.is_empty());
    let labelled =
        view::select(&images, &filters(&["label=team=web"]), None, false, now()).unwrap();
    assert_eq!(labelled.len(), 3);
    assert!(view::select(&images, &filters(&["dangling=maybe"]), None, false, now()).is_err());

    let quiet = view::render_list(&all, true, false, None).unwrap();
    assert_eq!(quiet, "cccccccccccc\nbbbbbbbbbbbb\naaaaaaaaaaaa\n");
    let digests = view::render_list(&all[2..], false, true, None).unwrap();
    assert!(
        digests.starts_with("REPOSITORY   TAG       DIGEST    IMAGE ID"),
        "{digests}"
    );
    let json = view::render_list(&all[2..], false, false, Some("json")).unwrap();
    assert!(json.contains("\"Repository\":\"busybox\"") && json.contains("\"Tag\":\"1\""));
    let tpl = view::render_list(&all[2..], false, false, Some("{{.Repository}}:{{.Tag}}"));
    assert_eq!(tpl.unwrap(), "busybox:1\n");
    assert!(view::LISTING.template(Some("{{.Nope}}")).is_err());
}

#[test]
fn inspect_is_shaped_like_dockers() {
    let img = image('a', &["docker.io/library/busybox:1"], &[], 0);
    let out = crate::output::listing::render_inspect(None, &[view::inspect_view(&img)]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], img.id);
    assert_eq!(v[0]["RepoTags"][0], "busybox:1");
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert!(v[0]["Config"]["Entrypoint"].is_null());
    assert_eq!(v[0]["Config"]["Labels"]["team"], "web");
    assert_eq!(v[0]["RootFS"]["Type"], "layers");
    assert_eq!(v[0]["Size"], 4_261_000);
    // Keys in Docker's order.
    assert!(out.find("\"Id\"").unwrap() < out.find("\"RepoTags\"").unwrap());
    assert!(out.find("\"Config\"").unwrap() < out.find("\"RootFS\"").unwrap());
}

fn layer(digest: char, done: u64, total: u64, complete: bool, cached: bool) -> Event {
    Event::Layer(ImagePullLayer {
        digest: format!("sha256:{}", digest.to_string().repeat(64)),
        done,
        total,
        complete,
        cached,
    })
}

#[test]
fn pull_progress_without_a_terminal_is_one_line_per_change() {
    let mut screen = PullScreen::new(Vec::new(), false);
    let events = [
        Event::Resolved(ImagePullResolved {
            reference: "10.0.0.1:5000/shoal-demo/web:1".into(),
            digest: "sha256:top".into(),
            layers: 2,
        }),
        layer('a', 0, 0, true, true),
        layer('b', 1_048_576, 2_097_152, false, false),
        layer('b', 2_097_152, 2_097_152, false, false),
        layer('b', 0, 0, true, false),
        Event::Done(ImagePullDone {
            reference: "10.0.0.1:5000/shoal-demo/web:1".into(),
            digest: "sha256:top".into(),
            image: None,
            up_to_date: false,
        }),
    ];
    for e in &events {
        screen.event(e).unwrap();
    }
    let out = String::from_utf8(screen.into_inner()).unwrap();
    assert_eq!(
        out,
        "1: Pulling from shoal-demo/web\n\
         aaaaaaaaaaaa: Already exists\n\
         bbbbbbbbbbbb: Pulling fs layer\n\
         bbbbbbbbbbbb: Downloading  1.049MB/2.097MB\n\
         bbbbbbbbbbbb: Downloading  2.097MB/2.097MB\n\
         bbbbbbbbbbbb: Download complete\n\
         bbbbbbbbbbbb: Pull complete\n\
         Digest: sha256:top\n\
         Status: Downloaded newer image for 10.0.0.1:5000/shoal-demo/web:1\n\
         10.0.0.1:5000/shoal-demo/web:1\n"
    );
}

#[test]
fn pull_progress_on_a_terminal_redraws_in_place() {
    let mut screen = PullScreen::new(Vec::new(), true);
    screen.event(&layer('a', 0, 10, false, false)).unwrap();
    screen.event(&layer('b', 0, 10, false, false)).unwrap();
    screen.event(&layer('a', 5, 10, false, false)).unwrap();
    screen
        .event(&Event::Done(ImagePullDone {
            reference: "docker.io/library/busybox:latest".into(),
            digest: "sha256:top".into(),
            image: None,
            up_to_date: true,
        }))
        .unwrap();
    let out = String::from_utf8(screen.into_inner()).unwrap();
    // Up two lines to a's, rewritten, back down two.
    assert!(
        out.contains(&format!(
            "\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Downloading {}\x1b[2B\r",
            bar(5, 10)
        )),
        "{out:?}"
    );
    assert!(out.ends_with(
        "Status: Image is up to date for busybox:latest\ndocker.io/library/busybox:latest\n"
    ));
    assert_eq!(
        bar(5, 10),
        format!("[{}>{}]       5B/10B", "=".repeat(25), " ".repeat(25))
    );
}

#[test]
fn rm_prune_and_load_reports() {
    let reply = ImageRemoveResponse {
        untagged: vec![
            "docker.io/library/busybox:1".into(),
            "docker.io/library/busybox@sha256:dd".into(),
        ],
        deleted: vec!["sha256:aa".into()],
    };
    assert_eq!(
        removed_lines(&reply, "Untagged", "Deleted"),
        "Untagged: busybox:1\nUntagged: busybox@sha256:dd\nDeleted: sha256:aa\n"
    );
    let pruned = ImagePruneResponse {
        images: vec![reply],
        reclaimed: 4_261_000,
    };
    assert_eq!(
        prune_report(&pruned),
        "Deleted Images:\nuntagged: busybox:1\nuntagged: busybox@sha256:dd\ndeleted: sha256:aa\n\nTotal reclaimed space: 4.261MB\n"
    );
    assert_eq!(
        prune_report(&ImagePruneResponse::default()),
        "Total reclaimed space: 0B\n"
    );
    let loaded = [
        image('a', &["docker.io/shoal-demo/busybox:1"], &[], 0),
        image('b', &[], &[], 0),
    ];
    assert_eq!(
        loaded_lines(&loaded),
        format!(
            "Loaded image: shoal-demo/busybox:1\nLoaded image ID: sha256:{}\n",
            "b".repeat(64)
        )
    );
}

#[test]
fn platform_is_this_nodes_only() {
    assert!(check_platform(None).is_ok());
    let here = format!(
        "{}/{}",
        shoal_proto::build_info::os(),
        shoal_proto::build_info::arch()
    );
    assert!(check_platform(Some(&here)).is_ok());
    assert!(check_platform(Some("windows/s390x")).is_err());
}
