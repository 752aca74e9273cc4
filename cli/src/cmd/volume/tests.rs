//! `volume` flags to request, `ls` rows and filters, Docker-shaped
//! inspect, the prune report.

use std::collections::BTreeMap;

use clap::Parser;
use shoal_proto::local::Volume;

use super::*;
use crate::cmd::filter::parse_filter;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: VolumeCommand,
}

fn parse(args: &[&str]) -> Result<VolumeCommand, clap::Error> {
    Cli::try_parse_from(std::iter::once("volume").chain(args.iter().copied())).map(|c| c.cmd)
}

fn volume(name: &str, tasks: &[&str], labels: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        driver: "local".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        options: BTreeMap::new(),
        mountpoint: format!("/var/lib/shoal/volumes/{name}/_data"),
        created_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123,
        }),
        anonymous: false,
        tasks: tasks.iter().map(|s| s.to_string()).collect(),
    }
}

fn filters(list: &[&str]) -> Filters {
    let entries = list.iter().map(|s| parse_filter(s).unwrap()).collect();
    Filters::new(entries, view::FILTER_KEYS).unwrap()
}

#[test]
fn create_flags_make_the_request() {
    let VolumeCommand::Create(args) = parse(&[
        "create",
        "--label",
        "a=b",
        "-o",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "data",
    ])
    .unwrap() else {
        panic!("create")
    };
    let r = create_request(args).unwrap();
    assert_eq!(r.name, "data");
    assert_eq!(r.driver, "local");
    assert_eq!(r.labels["a"], "b");
    assert_eq!(r.options["type"], "tmpfs");
    assert_eq!(r.options["device"], "tmpfs");
    let VolumeCommand::Create(args) = parse(&["create"]).unwrap() else {
        panic!("create")
    };
    assert_eq!(
        create_request(args).unwrap().name,
        "",
        "the daemon names it"
    );
    let VolumeCommand::Create(args) = parse(&["create", "-o", "=x"]).unwrap() else {
        panic!("create")
    };
    assert!(create_request(args).is_err());
    assert!(parse(&["rm"]).is_err(), "rm needs a volume");
    let VolumeCommand::Prune(p) = parse(&["prune", "-a", "-f"]).unwrap() else {
        panic!("prune")
    };
    assert!(p.all && p.force);
}

#[test]
fn ls_filters_and_tables() {
    let all = vec![
        volume("web10", &[], &[]),
        volume("web2", &["task1"], &[("team", "web")]),
        volume("db", &[], &[("team", "db")]),
    ];
    let listed = view::select(all.clone(), &filters(&[])).unwrap();
    let names: Vec<_> = listed.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["db", "web2", "web10"]);
    assert_eq!(
        view::render_list(&listed, false, None).unwrap(),
        "DRIVER    VOLUME NAME\nlocal     db\nlocal     web2\nlocal     web10\n"
    );
    assert_eq!(
        view::render_list(&listed, true, None).unwrap(),
        "db\nweb2\nweb10\n"
    );
    let dangling = view::select(all.clone(), &filters(&["dangling=true"])).unwrap();
    assert_eq!(dangling.len(), 2);
    let used = view::select(all.clone(), &filters(&["dangling=false"])).unwrap();
    assert_eq!(used[0].name, "web2");
    let named = view::select(all.clone(), &filters(&["name=eb"])).unwrap();
    assert_eq!(named.len(), 2);
    let labelled = view::select(all.clone(), &filters(&["label=team=db"])).unwrap();
    assert_eq!(labelled[0].name, "db");
    assert!(view::select(all, &filters(&["dangling=nah"])).is_err());
    let tpl = view::render_list(
        &listed[1..2],
        false,
        Some("{{.Name}} {{.Labels}} {{.Links}}"),
    );
    assert_eq!(tpl.unwrap(), "web2 team=web 1\n");
}

#[test]
fn inspect_is_shaped_like_dockers() {
    let v = volume("data", &[], &[]);
    let out = crate::output::listing::render_inspect(None, &[view::inspect_view(&v)]).unwrap();
    assert_eq!(
        out,
        "[\n    {\n        \"CreatedAt\": \"2023-11-14T22:13:20Z\",\n        \"Driver\": \"local\",\n        \"Labels\": {},\n        \"Mountpoint\": \"/var/lib/shoal/volumes/data/_data\",\n        \"Name\": \"data\",\n        \"Options\": {},\n        \"Scope\": \"local\"\n    }\n]\n"
    );
}

#[test]
fn prune_report_as_dockers() {
    let reply = VolumePruneResponse {
        deleted: vec!["a".into(), "b".into()],
        reclaimed: 2048,
    };
    assert_eq!(
        prune_report(&reply),
        "Deleted Volumes:\na\nb\n\nTotal reclaimed space: 2.048kB\n"
    );
    assert_eq!(
        prune_report(&VolumePruneResponse::default()),
        "Total reclaimed space: 0B\n"
    );
}
