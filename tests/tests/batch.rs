//! The atomic Batch call on a real manager, through a real mutual-TLS
//! client holding the manager's own certificate: a batch with one bad
//! object creates nothing at all; a good one creates every object, and the
//! CLI sees them.

use std::collections::BTreeSet;

use shoal_proto::control::BatchRequest;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::objects::{Annotations, ConfigSpec, SecretSpec};
use shoal_tests::Cluster;
use tonic::Code;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn annotations(name: &str) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        ..Default::default()
    })
}

fn config(name: &str) -> ConfigSpec {
    ConfigSpec {
        annotations: annotations(name),
        data: format!("data of {name}").into_bytes(),
    }
}

/// Sends `request` to host 0's control API from inside its namespace.
fn batch(
    cluster: &Cluster,
    request: BatchRequest,
) -> anyhow::Result<Result<Vec<String>, (Code, String)>> {
    let creds = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(0)))?
        .expect("manager credentials");
    let tls = creds.client_config()?;
    let addr = cluster.manager_addr(0);
    cluster.in_netns(0, move || {
        block_on(async move {
            let mut client = ControlClient::new(shoal_proto::net::channel(&addr, tls));
            match client.batch(request).await {
                Ok(r) => Ok(r.into_inner().config_ids),
                Err(s) => Err((s.code(), s.message().to_string())),
            }
        })
    })
}

fn names(cluster: &Cluster, kind: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = cluster
        .shoal(0, &[kind, "ls", "--format", "{{.Name}}"])
        .ok()?;
    Ok(out.lines().map(str::to_string).collect())
}

#[test]
fn a_batch_is_all_or_nothing() -> anyhow::Result<()> {
    shoal_proto::tls::install_default_provider();
    let cluster = Cluster::start(1)?;
    cluster.init_swarm(0)?;

    // One invalid name among valid objects of two kinds: nothing is made.
    let mut configs: Vec<ConfigSpec> = (0..5).map(|i| config(&format!("ok-{i}"))).collect();
    configs.insert(3, config("not valid!"));
    let refused = batch(
        &cluster,
        BatchRequest {
            secrets: vec![SecretSpec {
                annotations: annotations("s-ok"),
                data: b"value".to_vec(),
            }],
            configs,
            networks: Vec::new(),
            existing_secrets: Vec::new(),
        },
    )?;
    let (code, message) = refused.expect_err("a batch with a bad name must fail");
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.contains("config #3 (\"not valid!\")"),
        "the error must name the object: {message}"
    );
    assert!(names(&cluster, "config")?.is_empty());
    assert!(names(&cluster, "secret")?.is_empty());

    // 50 valid configs: all of them, with the ids the call returned.
    let wanted: BTreeSet<String> = (0..50).map(|i| format!("cfg-{i:02}")).collect();
    let ids = batch(
        &cluster,
        BatchRequest {
            configs: wanted.iter().map(|n| config(n)).collect(),
            ..Default::default()
        },
    )?
    .map_err(|(code, message)| anyhow::anyhow!("batch failed: {code:?} {message}"))?;
    assert_eq!(ids.len(), 50);
    assert_eq!(names(&cluster, "config")?, wanted);
    let listed_ids = cluster.shoal(0, &["config", "ls", "-q"]).ok()?;
    let listed_ids: BTreeSet<&str> = listed_ids.lines().collect();
    for id in &ids {
        assert!(
            listed_ids.contains(id.as_str()),
            "{id} not in {listed_ids:?}"
        );
    }

    // A name already taken: refused whole, naming the object.
    let again = batch(
        &cluster,
        BatchRequest {
            configs: vec![config("fresh"), config("cfg-07")],
            ..Default::default()
        },
    )?;
    let (code, message) = again.expect_err("a taken name must fail");
    assert_eq!(code, Code::AlreadyExists, "{message}");
    assert!(message.contains("config #1 (\"cfg-07\")"), "{message}");
    assert!(!names(&cluster, "config")?.contains("fresh"));
    Ok(())
}
