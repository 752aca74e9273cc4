//! Mounts on the embedded engine as Swarm users write them: a named volume
//! keeps a database's data on its node across updates and daemon restarts,
//! binds (read-only ones cannot be written), tmpfs, a bind whose source is
//! missing is refused, and a stack's top-level volumes (labels, and
//! `driver_opts` that mount a tmpfs while a task uses the volume).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_tests::{Cluster, eventually};

/// Where volume `name`'s data is on host 0.
fn data_dir(cluster: &Cluster, name: &str) -> PathBuf {
    cluster
        .state_dir(0)
        .join("volumes")
        .join(name)
        .join("_data")
}

/// Lines of a file (0 when missing).
fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Waits until the volume's `log` has `n` lines.
fn wait_lines(
    cluster: &Cluster,
    service: &str,
    log: &Path,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    eventually(
        &format!("{service} wrote line {n} into its volume"),
        timeout,
        || {
            let got = lines(log);
            anyhow::ensure!(
                got == n,
                "{got} lines in {}; tasks:\n{}",
                log.display(),
                cluster.task_errors(service)?
            );
            Ok(())
        },
    )
}

/// Whether `path` is a mount point in this (the daemons') namespace.
fn is_mount_point(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// A database-like task: appends a line at each start, prints the count.
const DB: &str = "echo $(date +%s%N) >> /data/log; cat /data/log | wc -l; exec sleep 3600";

#[test]
fn a_named_volume_keeps_its_data_across_updates_and_restarts() -> anyhow::Result<()> {
    let (mut cluster, registry) = Cluster::embedded_swarm(1)?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "db",
                "--mount",
                "type=volume,source=db-data,target=/data",
                &registry.image("busybox:1"),
                "sh",
                "-c",
                DB,
            ],
        )
        .ok()?;
    let log = data_dir(&cluster, "db-data").join("log");
    wait_lines(&cluster, "db", &log, 1, Duration::from_secs(60))?;
    let meta = std::fs::read_to_string(cluster.state_dir(0).join("volumes/db-data/meta.json"))?;
    assert!(meta.contains("\"local\""), "{meta}");

    cluster
        .shoal(0, &["service", "update", "-d", "--force", "db"])
        .ok()?;
    wait_lines(&cluster, "db", &log, 2, Duration::from_secs(60))?;
    eventually("the task counts 2 lines", Duration::from_secs(30), || {
        let out = cluster.shoal(0, &["service", "logs", "--raw", "db"]).ok()?;
        anyhow::ensure!(out.lines().any(|l| l.trim() == "2"), "{out}");
        Ok(())
    })?;

    // The daemon and its tasks die; the node's volume does not.
    cluster.restart(0)?;
    wait_lines(&cluster, "db", &log, 3, Duration::from_secs(120))?;
    Ok(())
}

#[test]
fn binds_and_tmpfs_mount_as_docker_does() -> anyhow::Result<()> {
    let (cluster, registry) = Cluster::embedded_swarm(1)?;
    let ro = cluster.dir().join("ro-source");
    let rw = cluster.dir().join("rw-source");
    std::fs::create_dir_all(&ro)?;
    std::fs::create_dir_all(&rw)?;
    std::fs::write(ro.join("hello.txt"), "from the host\n")?;
    let script = "cat /host/hello.txt
touch /host/x 2>/dev/null && echo HOST-WRITABLE || echo HOST-READ-ONLY
echo from-the-task > /rw/out
echo scratch-ok > /scratch/f && cat /scratch/f
grep ' /scratch ' /proc/mounts
echo PROBE-DONE
exec sleep 3600";
    let ro_mount = format!("type=bind,source={},target=/host,readonly", ro.display());
    let rw_mount = format!("type=bind,source={},target=/rw", rw.display());
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "probe",
                "--mount",
                &ro_mount,
                "--mount",
                &rw_mount,
                "--mount",
                "type=tmpfs,target=/scratch,tmpfs-size=1m",
                &registry.image("busybox:1"),
                "sh",
                "-c",
                script,
            ],
        )
        .ok()?;
    let log = eventually("the probe ran", Duration::from_secs(60), || {
        let log = cluster
            .shoal(0, &["service", "logs", "--raw", "probe"])
            .ok()?;
        anyhow::ensure!(
            log.contains("PROBE-DONE"),
            "log: {log}\ntasks:\n{}",
            cluster.task_errors("probe")?
        );
        Ok(log)
    })?;
    assert!(log.contains("from the host"), "{log}");
    assert!(log.contains("HOST-READ-ONLY"), "{log}");
    assert!(!ro.join("x").exists());
    assert_eq!(std::fs::read_to_string(rw.join("out"))?, "from-the-task\n");
    assert!(log.contains("scratch-ok"), "{log}");
    let scratch = log
        .lines()
        .find(|l| l.contains(" /scratch "))
        .unwrap_or_default();
    assert!(scratch.starts_with("tmpfs /scratch tmpfs"), "{log}");
    assert!(scratch.contains("size=1024k"), "{scratch}");
    assert!(scratch.contains("noexec"), "{scratch}");

    // A bind of a missing path never runs.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "broken",
                "--mount",
                "type=bind,source=/nonexistent-shoal-source,target=/x",
                &registry.image("busybox:1"),
                "sleep",
                "3600",
            ],
        )
        .ok()?;
    eventually("the bind is refused", Duration::from_secs(60), || {
        let errors = cluster.task_errors("broken")?;
        anyhow::ensure!(
            errors.contains("bind source path does not exist: /nonexistent-shoal-source"),
            "{errors}"
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn a_stacks_top_level_volumes_are_created_and_kept() -> anyhow::Result<()> {
    let (cluster, registry) = Cluster::embedded_swarm(1)?;
    let stack = cluster.dir().join("stack.yml");
    std::fs::write(
        &stack,
        format!(
            r#"version: "3.8"
services:
  db:
    image: {}
    command: ["sh", "-c", "date >> /data/log; wc -l < /data/log; grep ' /cache ' /proc/mounts; exec sleep 3600"]
    volumes:
      - data:/data
      - cache:/cache
volumes:
  data:
    labels:
      tier: db
  cache:
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=2m
"#,
            registry.image("busybox:1")
        ),
    )?;
    cluster
        .shoal(
            0,
            &["stack", "deploy", "-c", &stack.to_string_lossy(), "shop"],
        )
        .ok()?;
    let log = data_dir(&cluster, "shop_data").join("log");
    wait_lines(&cluster, "shop_db", &log, 1, Duration::from_secs(60))?;
    let meta = std::fs::read_to_string(cluster.state_dir(0).join("volumes/shop_data/meta.json"))?;
    assert!(meta.contains("\"tier\": \"db\""), "{meta}");
    assert!(meta.contains("com.docker.stack.namespace"), "{meta}");
    let cache = data_dir(&cluster, "shop_cache");
    assert!(is_mount_point(&cache), "the tmpfs is mounted while used");
    let out = eventually("the task sees its tmpfs", Duration::from_secs(30), || {
        let out = cluster
            .shoal(0, &["service", "logs", "--raw", "shop_db"])
            .ok()?;
        anyhow::ensure!(out.contains(" /cache "), "{out}");
        Ok(out)
    })?;
    assert!(out.contains("tmpfs /cache tmpfs"), "{out}");
    assert!(out.contains("size=2048k"), "{out}");

    cluster
        .shoal(0, &["service", "update", "-d", "--force", "shop_db"])
        .ok()?;
    wait_lines(&cluster, "shop_db", &log, 2, Duration::from_secs(60))?;

    // The stack goes; its volumes stay (as Docker's), the tmpfs unmounted
    // once no task uses it.
    cluster.shoal(0, &["stack", "rm", "shop"]).ok()?;
    eventually(
        "the cache volume is unmounted",
        Duration::from_secs(60),
        || {
            anyhow::ensure!(!is_mount_point(&cache), "{} is mounted", cache.display());
            Ok(())
        },
    )?;
    assert_eq!(lines(&log), 2);
    assert!(cache.is_dir());
    Ok(())
}
