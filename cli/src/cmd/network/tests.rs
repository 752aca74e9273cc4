//! `network` flags to spec, `ls` rows, Docker-shaped inspect, prune choice.

use std::collections::BTreeMap;

use clap::Parser;
use shoal_proto::objects::{Meta, NetworkAttachmentConfig, Service, ServiceSpec, TaskSpec};

use super::view::{self, inspect_view, render_list, unused};
use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    create: CreateArgs,
}

fn create_args(args: &[&str]) -> Result<CreateArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("create").chain(args.iter().copied())).map(|c| c.create)
}

fn network(id: &str, name: &str) -> Network {
    Network {
        id: id.into(),
        meta: Some(Meta::default()),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
            }),
            driver_config: Some(Driver {
                name: "overlay".into(),
                options: BTreeMap::from([("encrypted".to_string(), String::new())]),
            }),
            attachable: true,
            ipam: Some(IpamOptions {
                driver: Some(Driver {
                    name: "default".into(),
                    options: BTreeMap::new(),
                }),
                configs: vec![IpamConfig {
                    subnet: "10.0.9.0/24".into(),
                    range: String::new(),
                    gateway: "10.0.9.1".into(),
                }],
            }),
            ..NetworkSpec::default()
        }),
        ..Network::default()
    }
}

#[test]
fn create_flags_make_the_spec() {
    let args = create_args(&[
        "--subnet",
        "10.0.9.0/24",
        "--gateway",
        "10.0.9.1",
        "--attachable",
        "--opt",
        "encrypted",
        "--label",
        "team=web",
        "mynet",
    ])
    .unwrap();
    let spec = spec(&args).unwrap();
    let driver = spec.driver_config.clone().unwrap_or_default();
    assert_eq!(driver.name, "overlay");
    assert_eq!(driver.options["encrypted"], "");
    assert!(spec.attachable && !spec.internal && !spec.ingress);
    let ipam = spec.ipam.clone().unwrap_or_default();
    assert_eq!(ipam.configs[0].subnet, "10.0.9.0/24");
    assert_eq!(ipam.configs[0].gateway, "10.0.9.1");
    assert_eq!(spec.annotations.unwrap_or_default().labels["team"], "web");
    // No subnet, no IPAM: the manager allocates from its pools.
    assert!(spec_of(&["plain"]).ipam.is_none());
}

fn spec_of(args: &[&str]) -> NetworkSpec {
    spec(&create_args(args).unwrap()).unwrap()
}

#[test]
fn bad_addresses_fail_before_the_daemon() {
    for (args, want) in [
        (&["--subnet", "10.0.9.0", "n"][..], "invalid subnet"),
        (&["--subnet", "10.0.9.0/33", "n"], "invalid subnet"),
        (
            &["--subnet", "10.0.9.0/24", "--gateway", "nope", "n"],
            "invalid gateway",
        ),
        (&["--gateway", "10.0.9.1", "n"], "corresponding subnet"),
    ] {
        let err = spec(&create_args(args).unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains(want), "{args:?}: {err:#}");
    }
}

#[test]
fn ls_truncates_ids_unless_asked() {
    let nets = vec![
        network("bbbbbbbbbbbbbbbbbbbbbbbbb", "web_net"),
        network("aaaaaaaaaaaaaaaaaaaaaaaaa", "api_net"),
    ];
    let nets = view::select(nets, &Filters::default());
    assert_eq!(
        render_list(&nets, false, false, None).unwrap(),
        "NETWORK ID     NAME      DRIVER    SCOPE\n\
         aaaaaaaaaaaa   api_net   overlay   swarm\n\
         bbbbbbbbbbbb   web_net   overlay   swarm\n"
    );
    assert_eq!(
        render_list(&nets, true, true, None).unwrap(),
        "aaaaaaaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbb\n"
    );
    let entries = vec![("name".to_string(), "eb".to_string())];
    let only_web = view::select(nets, &Filters::new(entries, view::FILTER_KEYS).unwrap());
    assert_eq!(
        render_list(
            &only_web,
            false,
            false,
            Some("{{.Name}} {{.Labels}} {{.Internal}}")
        )
        .unwrap(),
        "web_net team=web false\n"
    );
}

#[test]
fn inspect_is_docker_shaped() {
    let out = render_inspect(None, &[inspect_view(&network("n1", "mynet"))]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{
            "Name": "mynet",
            "Id": "n1",
            "Created": "0001-01-01T00:00:00Z",
            "Scope": "swarm",
            "Driver": "overlay",
            "EnableIPv6": false,
            "IPAM": {
                "Driver": "default",
                "Options": null,
                "Config": [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}]
            },
            "Internal": false,
            "Attachable": true,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": null,
            "Options": {"encrypted": ""},
            "Labels": {"team": "web"}
        }])
    );
    // Keys in Docker's order, 4-space indented.
    assert!(
        out.starts_with("[\n    {\n        \"Name\": \"mynet\",\n        \"Id\": \"n1\","),
        "{out}"
    );
}

#[test]
fn prune_keeps_ingress_and_networks_services_use() {
    let mut ingress = network("i1", "ingress");
    if let Some(s) = ingress.spec.as_mut() {
        s.ingress = true;
    }
    let nets = vec![
        ingress,
        network("a1", "by_name"),
        network("b1", "by_id"),
        network("c1", "unused"),
    ];
    let attach = |target: &str| NetworkAttachmentConfig {
        target: target.into(),
        aliases: vec![],
    };
    let services = vec![Service {
        spec: Some(ServiceSpec {
            networks: vec![attach("by_name")],
            task: Some(TaskSpec {
                networks: vec![attach("b1")],
                ..TaskSpec::default()
            }),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }];
    let names: Vec<&str> = unused(&nets, &services)
        .into_iter()
        .map(view::name)
        .collect();
    assert_eq!(names, ["unused"]);
    assert!(PRUNE_WARNING.ends_with("Are you sure you want to continue? [y/N]"));
}
