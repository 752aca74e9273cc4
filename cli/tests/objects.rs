//! `node`, `secret`, `config` and `network` as a user meets them without a
//! daemon: mistakes are caught before any connection (so the message is
//! about the mistake, not the socket), and bad flags exit 2.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const NOWHERE: &str = "unix:///nonexistent.sock";

fn shoal(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(["-H", NOWHERE])
        .args(args)
        .env_remove("SHOAL_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    if let Some(mut input) = child.stdin.take() {
        // The command may exit before reading it all.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("wait for shoal")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn file_of(len: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(&vec![b's'; len]).expect("write");
    f
}

#[test]
fn secret_over_500_kb_is_refused_before_connecting() {
    let big = file_of(600 * 1024);
    let path = big.path().to_str().expect("utf-8 path");
    for (args, input) in [
        (vec!["secret", "create", "big", path], Vec::new()),
        (vec!["secret", "create", "big", "-"], vec![b's'; 600 * 1024]),
    ] {
        let out = shoal(&args, &input);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("less than 512000 bytes (got "), "{err}");
        assert!(!err.contains("Cannot connect"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn empty_secret_is_refused_and_just_under_500_kb_reaches_the_daemon() {
    let empty = file_of(0);
    let out = shoal(
        &[
            "secret",
            "create",
            "e",
            empty.path().to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("larger than 0"), "{}", stderr(&out));

    // Just under the limit the data is fine (swarmkit refuses the limit
    // itself): the failure is the socket.
    let max = file_of(500 * 1024 - 1);
    let out = shoal(
        &["secret", "create", "m", max.path().to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Cannot connect"), "{}", stderr(&out));
}

#[test]
fn configs_take_up_to_1000_kb() {
    let f = file_of(600 * 1024);
    let out = shoal(
        &["config", "create", "c", f.path().to_str().expect("utf-8")],
        b"",
    );
    assert!(stderr(&out).contains("Cannot connect"), "{}", stderr(&out));
    let f = file_of(1001 * 1024);
    let out = shoal(
        &["config", "create", "c", f.path().to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("less than 1024000 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_formats_filters_and_addresses_fail_before_connecting() {
    for (args, want) in [
        (
            &["secret", "ls", "--format", "{{.Bogus}}"][..],
            "unknown field .Bogus",
        ),
        (
            &["node", "ls", "--format", "table {{.Nope}}"],
            "unknown field .Nope",
        ),
        (
            &["node", "ls", "-f", "colour=red"],
            "invalid filter 'colour'",
        ),
        (
            &["network", "ls", "--filter", "bogus=1"],
            "invalid filter 'bogus'",
        ),
        (
            &["network", "create", "--subnet", "10.0.0.0/99", "n"],
            "invalid subnet",
        ),
        (
            &["node", "update", "--label-add", "=x", "n1"],
            "invalid label",
        ),
    ] {
        let out = shoal(args, b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("Cannot connect"), "{args:?}: {err}");
    }
}

#[test]
fn without_a_daemon_commands_fail_clearly() {
    for args in [
        &["node", "ls"][..],
        &["node", "inspect", "self"],
        &["network", "ls"],
        &["config", "ls", "-q"],
        &["secret", "rm", "x"],
    ] {
        let out = shoal(args, b"");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("Cannot connect to the Shoal daemon"),
            "{args:?}"
        );
    }
}

#[test]
fn unknown_flags_and_bad_values_exit_2() {
    for args in [
        &["node", "ls", "--bogus"][..],
        &["node", "update", "--availability", "sideways", "n1"],
        &["node", "update", "--role", "king", "n1"],
        &["node", "rm"],
        &["secret", "create", "--bogus", "a", "b"],
        &["secret", "create", "only-a-name"],
        &["config", "inspect"],
        &["network", "create"],
        &["network", "ls", "-f", "noequals"],
        &["network", "prune", "--bogus"],
    ] {
        let out = shoal(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn network_prune_asks_first_and_no_means_nothing() {
    let out = shoal(&["network", "prune"], b"n\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "WARNING! This will remove all custom networks not used by at least one service.\n\
             Are you sure you want to continue? [y/N]"
        ),
        "{stdout}"
    );
    // "y" goes on to the daemon, which is not there.
    let out = shoal(&["network", "prune"], b"y\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Cannot connect"));
}
