//! Autolock on real daemons: a restarted locked manager serves nothing
//! until `swarm unlock` with the right key; the key can be rotated and
//! autolock turned off, each manager re-sealing its own data key.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use shoal_tests::{Cluster, eventually};

fn unlock(cluster: &Cluster, i: usize, key: &str) -> (bool, String) {
    let mut child = Command::new(shoal_tests::cluster::shoal_binary().unwrap())
        .arg("-H")
        .arg(format!("unix://{}", cluster.socket(i).display()))
        .args(["swarm", "unlock"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal swarm unlock");
    writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn key_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .expect("an unlock key")
        .to_string()
}

#[test]
fn a_locked_manager_serves_nothing_until_unlocked() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(1)?;
    let addr = cluster.addr(0).to_string();
    let init = cluster
        .shoal(
            0,
            &["swarm", "init", "--autolock", "--advertise-addr", &addr],
        )
        .ok()?;
    assert!(
        init.contains("To unlock a swarm manager after it restarts"),
        "{init}"
    );
    let key = key_in(&init);
    cluster.shoal(0, &["secret", "create", "kept", "-"]);
    cluster.shoal(0, &["network", "create", "kept-net"]).ok()?;
    assert_eq!(
        key_in(&cluster.shoal(0, &["swarm", "unlock-key"]).ok()?),
        key
    );

    cluster.kill(0);
    cluster.restart(0)?;
    let out = cluster.shoal(0, &["node", "ls"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("Swarm is encrypted and needs to be unlocked"),
        "{}",
        out.stderr
    );
    let info = cluster.shoal(0, &["info", "--format", "json"]).ok()?;
    assert!(info.contains("\"LocalNodeState\": \"locked\""), "{info}");
    // Nothing listens on the cluster port while locked.
    let probe = cluster.exec(0, "sh", &["-c", "exec 3<>/dev/tcp/127.0.0.1/2377"]);
    assert!(!probe.success(), "the cluster port answered while locked");

    let (ok, err) = unlock(
        &cluster,
        0,
        "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    assert!(!ok && err.contains("invalid unlock key"), "{err}");
    let (ok, err) = unlock(&cluster, 0, "not-a-key");
    assert!(!ok && err.contains("invalid unlock key"), "{err}");
    let (ok, err) = unlock(&cluster, 0, &key);
    assert!(ok, "{err}");
    eventually("manager serves again", Duration::from_secs(15), || {
        anyhow::ensure!(
            cluster
                .shoal(0, &["network", "ls"])
                .ok()?
                .contains("kept-net")
        );
        Ok(())
    })?;

    // Rotate: the old key stops opening the manager, the new one does.
    let rotated = cluster
        .shoal(0, &["swarm", "unlock-key", "--rotate"])
        .ok()?;
    assert!(
        rotated.contains("Successfully rotated manager unlock key."),
        "{rotated}"
    );
    let new_key = key_in(&rotated);
    assert_ne!(new_key, key);
    std::thread::sleep(Duration::from_millis(500)); // let the manager re-seal
    cluster.kill(0);
    cluster.restart(0)?;
    assert!(
        !unlock(&cluster, 0, &key).0,
        "the rotated-away key still works"
    );
    assert!(unlock(&cluster, 0, &new_key).0);

    // Autolock off: the next restart needs no key.
    eventually("manager serves", Duration::from_secs(15), || {
        cluster.shoal(0, &["node", "ls"]).ok()
    })?;
    cluster
        .shoal(0, &["swarm", "update", "--autolock=false"])
        .ok()?;
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill(0);
    cluster.restart(0)?;
    eventually(
        "manager serves without a key",
        Duration::from_secs(15),
        || cluster.shoal(0, &["network", "ls"]).ok(),
    )?;
    Ok(())
}
