//! At least 15 malformed files: each error is one line naming the file,
//! the line and the key.

use super::error_of;

fn check(yaml: &str, want: &str) {
    let got = error_of(yaml);
    assert!(!got.contains('\n'), "not one line: {got}");
    assert!(got.starts_with("compose.yml:"), "no file: {got}");
    assert!(
        got.contains(want),
        "got {got:?}, want it to contain {want:?}"
    );
}

#[test]
fn bad_indentation() {
    check(
        "services:\n  web:\n    image: a\n   bad: 1\n",
        "compose.yml:4: invalid YAML",
    );
}

#[test]
fn tab_indentation() {
    check(
        "services:\n  web:\n\timage: a\n",
        "compose.yml:3: invalid YAML: tabs",
    );
}

#[test]
fn replicas_not_an_integer() {
    check(
        "version: \"3.8\"\nservices:\n  web:\n    image: busybox\n    deploy:\n      replicas: \"three\"\n",
        "compose.yml:6: services.web.deploy.replicas: invalid type: string \"three\", expected an integer",
    );
}

#[test]
fn bad_port() {
    check(
        "services:\n  web:\n    image: busybox\n    ports:\n      - 80x\n",
        "compose.yml:5: services.web.ports[0]: invalid port \"80x\"",
    );
}

#[test]
fn bad_port_range() {
    check(
        "services:\n  web:\n    image: busybox\n    ports:\n      - \"9000-8000:80-81\"\n",
        "compose.yml:5: services.web.ports[0]: invalid port range",
    );
}

#[test]
fn environment_as_a_number() {
    check(
        "services:\n  web:\n    image: busybox\n    environment: 42\n",
        "compose.yml:4: services.web.environment: invalid type: integer `42`",
    );
}

#[test]
fn unknown_network() {
    check(
        "services:\n  web:\n    image: busybox\n    networks:\n      - front\n      - nope\nnetworks:\n  front: {}\n",
        "compose.yml:6: services.web.networks[1]: undefined network \"nope\"",
    );
}

#[test]
fn unknown_secret() {
    check(
        "services:\n  web:\n    image: busybox\n    secrets:\n      - db_password\n",
        "compose.yml:5: services.web.secrets[0]: undefined secret \"db_password\"",
    );
}

#[test]
fn required_variable_unset() {
    check(
        "services:\n  web:\n    image: busybox:${NOPE:?must be set}\n",
        "compose.yml:3: services.web.image: required variable NOPE is missing a value: must be set",
    );
}

#[test]
fn unterminated_interpolation() {
    check(
        "services:\n  web:\n    image: busybox:${TAG\n",
        "compose.yml:3: services.web.image: invalid interpolation format",
    );
}

#[test]
fn duplicate_key() {
    check(
        "services:\n  web:\n    image: a\n    image: b\n",
        "compose.yml:4: services.web: duplicate key \"image\"",
    );
}

#[test]
fn bad_duration() {
    check(
        "services:\n  web:\n    image: busybox\n    stop_grace_period: 10x\n",
        "compose.yml:4: services.web.stop_grace_period: invalid duration \"10x\"",
    );
}

#[test]
fn bad_memory() {
    check(
        "services:\n  web:\n    image: busybox\n    deploy:\n      resources:\n        limits:\n          memory: 2X\n",
        "compose.yml:7: services.web.deploy.resources.limits.memory: invalid size \"2X\"",
    );
}

#[test]
fn unknown_top_level_key() {
    check(
        "services: {}\nservicez:\n  web: {}\n",
        "compose.yml:2: Additional property servicez is not allowed",
    );
}

#[test]
fn unknown_service_key() {
    check(
        "services:\n  web:\n    image: busybox\n    foo: bar\n",
        "compose.yml:4: services.web: Additional property foo is not allowed",
    );
}

#[test]
fn version_2_unsupported() {
    check(
        "version: \"2.1\"\nservices:\n  web:\n    image: busybox\n",
        "compose.yml:1: version: unsupported Compose file version: 2.1",
    );
}

#[test]
fn bogus_mode() {
    check(
        "services:\n  web:\n    image: busybox\n    deploy:\n      mode: bogus\n",
        "compose.yml:5: services.web.deploy.mode: invalid mode \"bogus\"",
    );
}

#[test]
fn malformed_constraint() {
    check(
        "services:\n  web:\n    image: busybox\n    deploy:\n      placement:\n        constraints:\n          - node.role=manager\n",
        "compose.yml:7: services.web.deploy.placement.constraints[0]: invalid constraint",
    );
}

#[test]
fn undefined_volume() {
    check(
        "services:\n  web:\n    image: busybox\n    volumes:\n      - data:/data\n",
        "compose.yml:5: services.web.volumes[0]: undefined volume \"data\"",
    );
}

#[test]
fn missing_secret_file() {
    check(
        "services:\n  web:\n    image: busybox\nsecrets:\n  s:\n    file: ./nope.txt\n",
        "compose.yml:6: secrets.s.file: cannot read secret file",
    );
}

#[test]
fn replicas_with_global() {
    check(
        "services:\n  web:\n    image: busybox\n    deploy:\n      mode: global\n      replicas: 2\n",
        "compose.yml:6: services.web.deploy.replicas: replicas can only be used with replicated",
    );
}

#[test]
fn unterminated_quote_in_command() {
    check(
        "services:\n  web:\n    image: busybox\n    command: sh -c 'echo\n",
        "compose.yml:4: services.web.command: unterminated single quote",
    );
}

#[test]
fn missing_image() {
    check(
        "services:\n  web:\n    command: sleep 1\n",
        "compose.yml:3: services.web: an image is required",
    );
}

#[test]
fn errors_name_the_file_they_are_in() {
    let (dir, r) = super::load_files(&[
        ("a.yml", "services:\n  web:\n    image: busybox\n"),
        (
            "b.yml",
            "services:\n  web:\n    deploy:\n      replicas: lots\n",
        ),
    ]);
    let e = r
        .err()
        .unwrap_or_default()
        .replace(&format!("{}/", dir.path().display()), "");
    assert!(
        e.starts_with("b.yml:4: services.web.deploy.replicas"),
        "{e}"
    );
}

#[test]
fn secret_and_config_data_over_dockers_limits() {
    let big = "x".repeat(600 * 1024);
    let yaml = "services:\n  web:\n    image: busybox\nsecrets:\n  s:\n    file: ./big.txt\n";
    let (dir, r) = super::load_files(&[("compose.yml", yaml), ("big.txt", &big)]);
    let e = r
        .err()
        .unwrap_or_default()
        .replace(&format!("{}/", dir.path().display()), "");
    assert!(
        e.contains(
            "secret data must be larger than 0 and less than 512000 bytes (got 614400 bytes)"
        ),
        "{e}"
    );
    // The same data is a valid config: configs may hold up to 1000 KiB.
    let yaml = "services:\n  web:\n    image: busybox\nconfigs:\n  c:\n    file: ./big.txt\n";
    let (_dir, r) = super::load_files(&[("compose.yml", yaml), ("big.txt", &big)]);
    assert!(r.is_ok(), "{:?}", r.err());
}
