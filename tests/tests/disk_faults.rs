//! A manager whose disk fills up, and damaged files in a stopped node's
//! state dir, on real daemons.
//!
//! - Full disk: a manager's state dir is a small tmpfs, filled with zeros.
//!   Writes then fail at once with an error that says "no space left on
//!   device" and names the file; the daemon stays up and says so in its
//!   log; with space freed and the daemon restarted, everything that was
//!   acknowledged is still there and writes work again.
//! - Damaged `swarm.json` or credentials: `shoal daemon` exits non-zero
//!   with a one-line error naming the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_tests::{Cluster, eventually};

/// A tmpfs mounted on a directory for the guard's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a daemon still holding files open must not keep it.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system is full; returns how
/// many bytes fit.
fn fill(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::create(path)?;
    let block = vec![0u8; 64 << 10];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Fill the last partial block too.
    for size in [4096usize, 512, 64, 1] {
        while file.write(&block[..size]).map(|n| n > 0).unwrap_or(false) {
            written += size as u64;
        }
    }
    Ok(written)
}

fn names(cluster: &Cluster, i: usize, noun: &str) -> anyhow::Result<Vec<String>> {
    let out = cluster
        .shoal(i, &[noun, "ls", "--format", "{{.Name}}"])
        .ok()?;
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    Ok(names)
}

fn says_no_space(text: &str) -> bool {
    text.to_lowercase().contains("no space left on device")
}

#[test]
fn a_full_disk_fails_writes_clearly_and_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(2)?;
    // The manager's state dir on an 8 MiB tmpfs (declared after the
    // cluster: dropped first, so unmounted even when the test fails).
    cluster.stop(0)?;
    let state = cluster.state_dir(0).to_path_buf();
    let _tmpfs = Tmpfs::mount(&state, "8m")?;
    cluster.restart(0)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;

    let data = cluster.dir().join("secret-data");
    std::fs::write(&data, "s3cr3t")?;
    let data = data.to_string_lossy().into_owned();
    let mut secrets = Vec::new();
    for k in 0..5 {
        let name = format!("before-{k}");
        cluster.shoal(0, &["secret", "create", &name, &data]).ok()?;
        secrets.push(name);
    }
    cluster
        .shoal(
            0,
            &[
                "service", "create", "-d", "--name", "kept", "busybox", "sleep", "1000",
            ],
        )
        .ok()?;
    let services = vec!["kept".to_string()];

    // Fill the disk. A write may still fit in a page a file already has;
    // it is acknowledged then, and must be kept like the others.
    let filler = state.join("filler");
    let filled = fill(&filler)?;
    eprintln!("filled the tmpfs with {filled} bytes");
    let mut refused = None;
    for k in 0..200 {
        let name = format!("full-{k}");
        let started = Instant::now();
        let out = cluster.shoal(0, &["secret", "create", &name, &data]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "secret create took {:?}",
            started.elapsed()
        );
        if out.success() {
            secrets.push(name);
        } else {
            refused = Some(out.stderr);
            break;
        }
    }
    let refused = refused.context("every write succeeded on a full disk")?;
    eprintln!("refused on a full disk: {}", refused.trim());
    assert!(says_no_space(&refused), "unclear error: {refused}");

    // Later writes say why too, at once, and the daemon is still up.
    let started = Instant::now();
    let out = cluster.shoal(
        0,
        &[
            "service", "create", "-d", "--name", "late", "busybox", "sleep", "1000",
        ],
    );
    assert!(!out.success(), "service create on a full disk succeeded");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(says_no_space(&out.stderr), "unclear error: {}", out.stderr);
    cluster.shoal(0, &["version"]).ok()?;
    let log = cluster.log_tail(0, 200);
    let line = log
        .lines()
        .find(|l| says_no_space(l))
        .context("the log does not say the disk is full")?;
    assert!(
        line.contains(&state.display().to_string()),
        "the log does not name the file: {line}"
    );

    // Space back, daemon restarted: nothing acknowledged is lost.
    std::fs::remove_file(&filler)?;
    cluster.restart(0)?;
    eventually("acknowledged secrets back", Duration::from_secs(30), || {
        let listed = names(&cluster, 0, "secret")?;
        anyhow::ensure!(
            secrets.iter().all(|s| listed.contains(s)),
            "{listed:?} lacks some of {secrets:?}"
        );
        Ok(())
    })?;
    assert_eq!(names(&cluster, 0, "service")?, services);
    // And it takes writes again.
    cluster
        .shoal(0, &["secret", "create", "after", &data])
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "service", "create", "-d", "--name", "after", "busybox", "sleep", "1000",
            ],
        )
        .ok()?;
    assert!(names(&cluster, 0, "secret")?.contains(&"after".to_string()));
    Ok(())
}

/// Starting host `i` must fail: the daemon exits non-zero, and the last
/// line of its log is the one-line error; returns it.
fn refused_start(cluster: &mut Cluster, i: usize) -> anyhow::Result<String> {
    match cluster.restart(i) {
        Ok(()) => anyhow::bail!("node-{i} started on a damaged state dir"),
        Err(e) => {
            let message = format!("{e:#}");
            anyhow::ensure!(
                message.contains("daemon exited with exit status: 1"),
                "{message}"
            );
            let tail = cluster.log_tail(i, 5);
            let last = tail.lines().last().unwrap_or_default().to_string();
            anyhow::ensure!(last.starts_with("Error: "), "no error line last: {tail}");
            Ok(last)
        }
    }
}

#[test]
fn damaged_swarm_file_and_credentials_stop_the_daemon_by_name() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(2)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    let status = cluster.stop(1)?;
    assert!(status.success(), "node-1 stopped with {status}");
    let state = cluster.state_dir(1).to_path_buf();

    // Truncated and garbage swarm.json.
    let swarm = state.join("swarm.json");
    let saved = std::fs::read(&swarm)?;
    for damaged in [&saved[..saved.len() / 2], b"\x00\x01garbage".as_slice()] {
        std::fs::write(&swarm, damaged)?;
        let error = refused_start(&mut cluster, 1)?;
        eprintln!("damaged swarm.json: {error}");
        assert!(error.contains(&swarm.display().to_string()), "{error}");
    }
    std::fs::write(&swarm, &saved)?;

    // Each credential file, truncated or garbage; then a key that is not
    // the certificate's.
    let certs = state.join("certificates");
    let generation = certs.join(std::fs::read_link(certs.join("current"))?);
    let other = std::fs::read(cluster.state_dir(0).join("certificates/current/node.key"))?;
    for file in ["node.key", "node.crt", "root-ca.crt"] {
        let path = generation.join(file);
        let saved = std::fs::read(&path)?;
        let mut damages = vec![saved[..saved.len() / 2].to_vec(), b"garbage".to_vec()];
        if file == "node.key" {
            damages.push(other.clone());
        }
        for damaged in damages {
            std::fs::write(&path, damaged)?;
            let error = refused_start(&mut cluster, 1)?;
            eprintln!("damaged {file}: {error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
        std::fs::write(&path, saved)?;
    }

    // Put back, it starts and rejoins.
    cluster.restart(1)?;
    eventually("node-1 ready again", Duration::from_secs(30), || {
        cluster.wait_nodes_ready(0, 2, Duration::from_secs(1))
    })?;
    Ok(())
}
