//! Rotation follows the commits that concern it, on paused time.

use std::time::Duration;

use shoal_proto::objects::{self, CaConfig, ClusterSpec, NodeCertificate};

use super::*;
use crate::testing::{InstantLeader, instant_leader};

fn root(t: &crate::store::Tables) -> objects::RootCa {
    t.cluster()
        .and_then(|c| c.root_ca.clone())
        .expect("a root CA")
}

/// Long enough for a pass, far shorter than any polling would need.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn write(
    m: &InstantLeader,
    f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<(), CommitError>,
) {
    m.ctx.update(f).await.expect("the write commits");
}

#[tokio::test(start_paused = true)]
async fn a_rotation_starts_on_request_and_finishes_when_every_node_renewed() {
    let m = instant_leader();
    let old = RootCa::generate("c1").expect("a root");
    let cluster = Cluster {
        id: "c1".into(),
        spec: Some(ClusterSpec {
            ca_config: Some(CaConfig::default()),
            ..Default::default()
        }),
        root_ca: Some(objects::RootCa {
            ca_cert: old.cert_pem().as_bytes().to_vec(),
            ca_key: old.key_pem().into_bytes(),
            ca_cert_digest: old.digest().to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = Node {
        id: "n1".into(),
        certificate: Some(NodeCertificate {
            issuer_digest: old.digest().to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    write(&m, |tx| {
        tx.create(cluster)?;
        Ok(tx.create(node)?)
    })
    .await;
    let stop = CancellationToken::new();
    tokio::spawn(run(m.ctx.clone(), stop.clone()));
    settle().await;
    assert!(
        m.ctx.store.view(root).root_rotation.is_none(),
        "nothing asked"
    );

    write(&m, |tx| {
        let mut cluster = tx.tables().cluster().cloned().expect("the cluster");
        let config = cluster.spec.as_mut().and_then(|s| s.ca_config.as_mut());
        config.expect("a CA config").force_rotate = 1;
        Ok(tx.update(cluster)?)
    })
    .await;
    settle().await;
    let rotation = m.ctx.store.view(root).root_rotation.expect("started");
    let new = RootCa::from_pem(
        &String::from_utf8_lossy(&rotation.ca_cert),
        &String::from_utf8_lossy(&rotation.ca_key),
    )
    .expect("the new root");

    // The last node renews from the new root: that commit finishes it.
    write(&m, |tx| {
        let mut node = tx.tables().get::<Node>("n1").cloned().expect("the node");
        node.certificate.get_or_insert_default().issuer_digest = new.digest().to_string();
        Ok(tx.update(node)?)
    })
    .await;
    settle().await;
    let finished = m.ctx.store.view(root);
    assert!(finished.root_rotation.is_none(), "finished");
    assert_eq!(finished.ca_cert_digest, new.digest().to_string());
    stop.cancel();
}
