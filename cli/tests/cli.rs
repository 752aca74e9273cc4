//! The `shoal` binary as a user meets it: help, errors, exit codes, and a
//! daemon's life on one machine (no namespaces needed).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

fn shoal(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SHOAL_HOST")
        .output()
        .expect("run shoal")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon on a temp state dir and socket, SIGKILLed when dropped.
struct Daemon {
    child: Child,
    socket: String,
}

impl Daemon {
    fn start(dir: &Path, name: &str) -> (Daemon, Output) {
        let socket = format!("unix://{}", dir.join(format!("{name}.sock")).display());
        let mut child = Command::new(BIN)
            .args(["-H", &socket, "daemon", "--engine", "sim", "--state-dir"])
            .arg(dir.join(name))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = shoal(&["-H", &socket, "version"]);
            if out.status.success() || Instant::now() > deadline {
                return (Daemon { child, socket }, out);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("daemon exited early with {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_lists_every_noun() {
    let out = shoal(&["--help"]);
    assert!(out.status.success());
    let (stdout, _) = text(&out);
    for noun in [
        "swarm", "node", "service", "stack", "network", "secret", "config", "daemon", "version",
        "info",
    ] {
        assert!(
            stdout.contains(&format!("\n  {noun} ")),
            "--help lacks {noun}:\n{stdout}"
        );
    }
}

#[test]
fn bad_event_times_fail_before_the_daemon() {
    let cmd = ["events", "--since", "yesterday-ish"];
    let out = shoal(&cmd);
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{cmd:?}");
    assert!(stdout.is_empty(), "{cmd:?} printed {stdout}");
    assert!(stderr.contains("yesterday-ish"), "{cmd:?}: {stderr}");
    assert!(!stderr.contains("Cannot connect"), "{cmd:?}: {stderr}");
}

#[test]
fn a_bad_compose_file_fails_before_the_daemon() {
    // The loader runs first: a missing file is a one-line error, exit 1,
    // with no daemon contacted.
    let out = shoal(&["stack", "deploy", "-c", "/nonexistent/x.yml", "app"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("Error: /nonexistent/x.yml: cannot read the file"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn service_flags_are_checked_before_the_daemon() {
    // A bad value is a usage error (exit 2) naming the value, with no daemon.
    for (args, needle) in [
        (
            &["service", "create", "--limit-memory", "lots", "nginx"][..],
            "invalid size",
        ),
        (
            &["service", "create", "-p", "80:80/icmp", "nginx"],
            "invalid protocol",
        ),
        (
            &["service", "create", "--update-delay", "soon", "nginx"],
            "invalid duration",
        ),
        (&["service", "scale", "web"], "invalid scale specifier"),
        (
            &["service", "logs", "--tail", "some", "web"],
            "invalid tail value",
        ),
        (
            &["service", "logs", "--since", "yesterday", "web"],
            "invalid since value",
        ),
    ] {
        let out = shoal(&[&["-H", "unix:///nonexistent/shoal.sock"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out).1.contains(needle), "{args:?}: {}", text(&out).1);
    }
    // Rules across flags fail before connecting, too.
    let out = shoal(&[
        "-H",
        "unix:///nonexistent/shoal.sock",
        "service",
        "create",
        "--mode",
        "global",
        "--replicas",
        "2",
        "nginx",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("replicas can only be used"),
        "{}",
        text(&out).1
    );
    let out = shoal(&["-H", "unix:///nonexistent/shoal.sock", "service", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("Cannot connect to the Shoal daemon"));
}

#[test]
fn unknown_flags_and_commands_are_refused() {
    let out = shoal(&["version", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--bogus"));
    let out = shoal(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_daemon_means_a_clear_error_and_non_zero_exit() {
    let out = shoal(&["-H", "unix:///nonexistent/shoal.sock", "info"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("Cannot connect to the Shoal daemon at unix:///nonexistent/shoal.sock"),
        "{stderr}"
    );

    // `version` still shows the client, like docker's.
    let out = shoal(&["-H", "unix:///nonexistent/shoal.sock", "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).0.starts_with("Client:"));
}

#[test]
fn completion_scripts_are_generated() {
    let out = shoal(&["completion", "bash"]);
    assert!(out.status.success());
    assert!(text(&out).0.contains("shoal"));
}

#[test]
fn daemon_serves_version_and_info_over_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, out) = Daemon::start(dir.path(), "a");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Server: Shoal daemon") && stdout.contains("Engine:            sim"),
        "{stdout}"
    );

    let out = shoal(&["-H", &daemon.socket, "info", "--format", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info is JSON");
    assert_eq!(info["Engine"], "sim");
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    assert_eq!(info["DaemonPid"], daemon.child.id());
}

#[test]
fn the_socket_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _) = Daemon::start(dir.path(), "a");
    let path = daemon.socket.trim_start_matches("unix://");
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn two_daemons_cannot_share_a_state_dir_or_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, _) = Daemon::start(dir.path(), "a");

    // Same state dir, other socket.
    let out = Command::new(BIN)
        .args([
            "-H",
            &format!("unix://{}/b.sock", dir.path().display()),
            "daemon",
            "--engine",
            "sim",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("a"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("in use by another shoal daemon"),
        "{}",
        text(&out).1
    );

    // Other state dir, same socket.
    let out = Command::new(BIN)
        .args([
            "-H",
            &format!("unix://{}/a.sock", dir.path().display()),
            "daemon",
            "--engine",
            "sim",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("already serving"), "{}", text(&out).1);
}

#[test]
fn a_stale_socket_from_a_killed_daemon_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = Daemon::start(dir.path(), "a");
    drop(first); // SIGKILL: the socket file stays behind
    let (_second, out) = Daemon::start(dir.path(), "a");
    assert!(out.status.success(), "{}", text(&out).1);
}
