//! `swarm backup` and `swarm init --force-new-cluster --restore`, as an
//! operator uses them: a backup taken while a client keeps writing
//! restores into a new cluster on another machine, where `service ls`,
//! `secret ls` and a task reading its secret agree with the original; the
//! old cluster's worker joins the new one with its token. A wrong
//! passphrase and a damaged file are refused clearly and change nothing.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_tests::{Cluster, eventually};

const PASSPHRASE: &str = "correct horse battery staple";
const SECRET: &str = "s3cr3t-value-9f2c1e";

/// `service ls` rows as `name mode replicas image`.
fn services(cluster: &Cluster, i: usize) -> anyhow::Result<BTreeSet<String>> {
    let out = cluster
        .shoal(
            i,
            &[
                "service",
                "ls",
                "--format",
                "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}",
            ],
        )
        .ok()?;
    Ok(out.lines().map(str::to_string).collect())
}

fn names(cluster: &Cluster, i: usize, kind: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = cluster
        .shoal(i, &[kind, "ls", "--format", "{{.Name}}"])
        .ok()?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Every service on host `i` shows all its replicas running.
fn converged(cluster: &Cluster, i: usize) -> anyhow::Result<BTreeSet<String>> {
    let rows = services(cluster, i)?;
    for row in &rows {
        let replicas = row.split(' ').nth(2).unwrap_or_default();
        let (running, wanted) = replicas.split_once('/').unwrap_or_default();
        anyhow::ensure!(running == wanted && !wanted.is_empty(), "{row}");
    }
    Ok(rows)
}

/// A client creating secrets `load-0`, `load-1`, ... one after another
/// on host 0 until stopped; what it saw acknowledged, in order.
struct Load {
    acked: Arc<Mutex<Vec<usize>>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(cluster: Arc<Cluster>) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (acked, stop) = (acked.clone(), stop.clone());
            move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("load-{n}");
                    let out = cluster.shoal_stdin(0, &["secret", "create", &name, "-"], b"x");
                    if out.success() {
                        acked.lock().unwrap().push(n);
                    }
                }
            }
        });
        Load {
            acked,
            stop,
            thread,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.acked.lock().unwrap().len()
    }
}

#[test]
fn a_backup_taken_under_load_restores_into_a_new_cluster() -> anyhow::Result<()> {
    // Hosts 0 and 1: the old cluster (manager, worker). Host 2: a new
    // machine that restores it.
    let cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    let dir = cluster.dir().to_path_buf();
    let pass_file = dir.join("passphrase");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n"))?;
    let pass_arg = pass_file.display().to_string();

    cluster
        .shoal_stdin(
            0,
            &["secret", "create", "db_password", "-"],
            SECRET.as_bytes(),
        )
        .ok()?;
    cluster
        .shoal_stdin(0, &["config", "create", "app_conf", "-"], b"level=debug")
        .ok()?;
    cluster
        .shoal(0, &["network", "create", "-d", "overlay", "backend"])
        .ok()?;
    let reader = [
        "service",
        "create",
        "-d",
        "--name",
        "reader",
        "--replicas",
        "2",
        "--secret",
        "db_password",
        "busybox",
        "sh",
        "-c",
        "echo read:$(cat /run/secrets/db_password); sleep 1000",
    ];
    cluster.shoal(0, &reader).ok()?;
    let web = [
        "service", "create", "-d", "--name", "web", "--mode", "global", "busybox", "sleep", "1000",
    ];
    cluster.shoal(0, &web).ok()?;
    let original = eventually("the original converges", Duration::from_secs(30), || {
        converged(&cluster, 0)
    })?;

    // Refused before anything is written: a worker is no manager, and a
    // swarm without autolock has no unlock key to seal with.
    let backup = dir.join("swarm.backup");
    let file_arg = backup.display().to_string();
    let out = cluster.shoal(
        1,
        &[
            "swarm",
            "backup",
            "-o",
            &file_arg,
            "--passphrase-file",
            &pass_arg,
        ],
    );
    assert!(
        !out.success() && out.stderr.contains("not a swarm manager"),
        "{out:?}"
    );
    let out = cluster.shoal(0, &["swarm", "backup", "-o", &file_arg]);
    assert!(
        !out.success() && out.stderr.contains("needs a passphrase"),
        "{out:?}"
    );
    assert!(!backup.exists());

    // The backup, while a client keeps writing.
    let cluster = Arc::new(cluster);
    let load = Load::start(cluster.clone());
    eventually("the load writes", Duration::from_secs(20), || {
        anyhow::ensure!(load.acked() >= 3);
        Ok(())
    })?;
    let acked_before = load.acked();
    let out = cluster
        .shoal(
            0,
            &[
                "swarm",
                "backup",
                "-o",
                &file_arg,
                "--passphrase-file",
                &pass_arg,
            ],
        )
        .ok()?;
    assert!(out.contains("written to"), "{out}");
    println!("{out}");
    eventually("the load writes on", Duration::from_secs(20), || {
        anyhow::ensure!(load.acked() >= acked_before + 3);
        Ok(())
    })?;
    let acked_total = load.stop();
    let sealed = std::fs::read(&backup)?;
    assert!(
        !sealed.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the secret is in the backup in plaintext"
    );
    assert_eq!(
        std::fs::metadata(&backup)?.permissions().mode() & 0o777,
        0o600
    );

    // A wrong passphrase and a damaged file: clear errors, no swarm.
    let addr = cluster.addr(2).to_string();
    let restore = |file: &str, pass: &str| {
        cluster.shoal(
            2,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &addr,
                "--force-new-cluster",
                "--restore",
                file,
                "--passphrase-file",
                pass,
            ],
        )
    };
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "not the passphrase")?;
    let out = restore(&file_arg, &wrong.display().to_string());
    assert!(
        !out.success() && out.stderr.contains("wrong passphrase"),
        "{out:?}"
    );
    let damaged = dir.join("damaged.backup");
    let mut bytes = sealed.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, bytes)?;
    let out = restore(&damaged.display().to_string(), &pass_arg);
    assert!(!out.success() && out.stderr.contains("damaged"), "{out:?}");
    let out = cluster.shoal(2, &["node", "ls"]);
    assert!(
        !out.success(),
        "host 2 joined a swarm after failed restores: {out:?}"
    );

    // The restore.
    let out = restore(&file_arg, &pass_arg).ok()?;
    assert!(out.contains("Restored swarm"), "{out}");
    println!("{out}");
    assert!(out.contains("Swarm initialized"), "{out}");
    let restored = eventually(
        "the restored cluster converges",
        Duration::from_secs(30),
        || converged(&cluster, 2),
    )?;
    // Global `web` runs on the one node the new cluster has.
    let expected: BTreeSet<String> = original
        .iter()
        .map(|row| row.replace("global 2/2", "global 1/1"))
        .collect();
    assert_eq!(restored, expected);
    assert!(names(&cluster, 2, "network")?.contains("backend"));
    assert!(names(&cluster, 2, "config")?.contains("app_conf"));

    // Secrets: the backup is one consistent cut of the writes.
    let secrets = names(&cluster, 2, "secret")?;
    assert!(secrets.contains("db_password"), "{secrets:?}");
    let loads: BTreeSet<usize> = secrets
        .iter()
        .filter_map(|s| s.strip_prefix("load-")?.parse().ok())
        .collect();
    let upto = loads.len();
    assert_eq!(loads, (0..upto).collect(), "not a prefix of the writes");
    println!("{upto} of {acked_total} writes restored ({acked_before} before the backup)");
    assert!(
        (acked_before..=acked_total).contains(&upto),
        "{upto} writes restored; {acked_before} were acknowledged before the backup, {acked_total} in all"
    );

    // A restored task reads the restored secret.
    eventually("reader prints its secret", Duration::from_secs(20), || {
        let out = cluster
            .shoal(2, &["service", "logs", "--raw", "reader"])
            .ok()?;
        anyhow::ensure!(out.contains(&format!("read:{SECRET}")), "{out}");
        Ok(())
    })?;

    // The old cluster's worker joins the new one with its token and runs
    // the global service.
    cluster.shoal(1, &["swarm", "leave", "--force"]).ok()?;
    cluster.join(1, 2, "worker")?;
    cluster.wait_nodes_ready(2, 2, Duration::from_secs(30))?;
    eventually(
        "web runs on the rejoined worker",
        Duration::from_secs(30),
        || {
            let rows = services(&cluster, 2)?;
            anyhow::ensure!(
                rows.iter().any(|r| r.starts_with("web global 2/2")),
                "{rows:?}"
            );
            Ok(())
        },
    )?;

    // With autolock on, the unlock key seals a backup given no passphrase.
    cluster
        .shoal(0, &["swarm", "update", "--autolock=true"])
        .ok()?;
    let keyed = dir.join("keyed.backup").display().to_string();
    let out = cluster.shoal(0, &["swarm", "backup", "-o", &keyed]).ok()?;
    assert!(out.contains("sealed with the swarm's unlock key"), "{out}");
    Ok(())
}
