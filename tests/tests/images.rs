//! The embedded engine on real daemons, a real registry and no Docker
//! engine: stacks that name images and no command run from images pulled
//! over the underlay, confined like Docker's defaults, reached through the
//! routing mesh; updates roll over to a new tag; pull failures are clear.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

/// GET `url` from host `from`'s namespace; the body, trimmed.
fn get(cluster: &Cluster, from: usize, url: &str) -> anyhow::Result<String> {
    let out = cluster.exec(from, "curl", &["-s", "--max-time", "2", url]);
    anyhow::ensure!(out.success(), "GET {url} from node-{from}: {}", out.stderr);
    Ok(out.stdout.trim().to_string())
}

#[test]
fn a_stack_without_commands_runs_from_images_and_rolls_to_a_new_tag() -> anyhow::Result<()> {
    let (cluster, registry) = Cluster::embedded_swarm(3)?;
    let stack = cluster.dir().join("stack.yml");
    std::fs::write(
        &stack,
        format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {}\n    ports: [\"8080:80\"]\n    deploy:\n      replicas: 3\n      update_config: {{parallelism: 1, order: start-first}}\n",
            registry.image("web:1")
        ),
    )?;
    cluster
        .shoal(
            0,
            &["stack", "deploy", "-c", &stack.to_string_lossy(), "demo"],
        )
        .ok()?;
    let page = |i: usize| {
        get(
            &cluster,
            (i + 1) % 3,
            &format!("http://{}:8080/cgi-bin/index.cgi", cluster.addr(i)),
        )
    };
    eventually(
        "web v1 answers on every node",
        Duration::from_secs(60),
        || {
            for i in 0..3 {
                let body = page(i).unwrap_or_else(|e| format!("{e}"));
                anyhow::ensure!(
                    body.starts_with("web v1 on "),
                    "node-{i}: {body:?}; tasks:\n{}",
                    cluster.task_errors("demo_web")?
                );
            }
            Ok(())
        },
    )?;

    // The tag was pinned to its digest at deploy (Docker's
    // --resolve-image always); lists show the tag, inspect the digest.
    let inspect = cluster.shoal(0, &["service", "inspect", "demo_web"]).ok()?;
    assert!(inspect.contains("shoal-demo/web:1@sha256:"), "{inspect}");
    let ls = cluster.shoal(0, &["service", "ls"]).ok()?;
    assert!(
        ls.contains("shoal-demo/web:1 ") && !ls.contains("sha256"),
        "{ls}"
    );
    let again = cluster
        .shoal(
            0,
            &["stack", "deploy", "-c", &stack.to_string_lossy(), "demo"],
        )
        .ok()?;
    assert!(
        !again.contains("Updating service"),
        "same digest, no update: {again}"
    );

    cluster
        .shoal(
            0,
            &[
                "service",
                "update",
                "--image",
                &registry.image("web:2"),
                "demo_web",
            ],
        )
        .ok()?;
    eventually(
        "web v2 answers on every node",
        Duration::from_secs(60),
        || {
            for i in 0..3 {
                let body = page(i)?;
                anyhow::ensure!(body.starts_with("web v2 on "), "node-{i}: {body:?}");
            }
            Ok(())
        },
    )?;
    // web:2's whiteout hides web:1's file in the layer below.
    let gone = get(
        &cluster,
        1,
        &format!("http://{}:8080/only-in-v1.html", cluster.addr(0)),
    )?;
    assert!(!gone.contains("only in v1"), "{gone:?}");
    Ok(())
}

/// What a task sees of itself and its node, printed to its log.
const PROBE: &str = r#"id
set -- $(tr '\0' ' ' < /proc/1/cmdline); echo "PID1 $1 $2 $3"
grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status
cat /etc/motd
echo "EVIL $(cat /etc/shoal-test-evil 2>/dev/null)"
grep -w db /etc/hosts || echo NO-DB-HOST
ls /run/secrets
cat "$STATE/swarm.json" >/dev/null 2>&1 && echo STATE-VISIBLE || echo STATE-HIDDEN
cat /run/secrets/other >/dev/null 2>&1 && echo OTHER-SECRET-VISIBLE || echo OTHER-SECRET-HIDDEN
mount -t tmpfs none /tmp 2>/dev/null && echo MOUNT-OK || echo MOUNT-DENIED
touch /probe-write 2>/dev/null && echo ROOT-WRITABLE || echo ROOT-READ-ONLY
(n=0; while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); done) 2>/dev/null
echo "FORK-LOOP-EXIT $?"
set -- /proc/[0-9]*
echo "FORKED $#"
echo PROBE-DONE
exec sleep 3600"#;

/// Creates a probe service from `image` with `flags`; its log once done.
fn probe(cluster: &Cluster, name: &str, image: &str, flags: &[&str]) -> anyhow::Result<String> {
    let state = format!("STATE={}", cluster.state_dir(0).display());
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--constraint",
        "node.role==manager",
        "--env",
        &state,
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, "sh", "-c", PROBE]);
    cluster.shoal(0, &args).ok()?;
    let mut log = String::new();
    eventually(
        &format!("{name} probed itself"),
        Duration::from_secs(60),
        || {
            log = cluster.shoal(0, &["service", "logs", "--raw", name]).ok()?;
            anyhow::ensure!(
                log.contains("PROBE-DONE"),
                "log: {log}\ntasks:\n{}",
                cluster.task_errors(name)?
            );
            Ok(())
        },
    )?;
    Ok(log)
}

#[test]
fn a_task_is_confined_like_dockers_defaults() -> anyhow::Result<()> {
    let (cluster, registry) = Cluster::embedded_swarm(1)?;
    let secret = cluster.dir().join("secret.txt");
    std::fs::write(&secret, "s3cr3t")?;
    for name in ["mine", "other"] {
        cluster
            .shoal(0, &["secret", "create", name, &secret.to_string_lossy()])
            .ok()?;
    }
    // A service holding the other secret runs on the same node.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "holder",
                "--secret",
                "other",
                &registry.image("busybox:1"),
                "sleep",
                "3600",
            ],
        )
        .ok()?;

    let log = probe(
        &cluster,
        "confined",
        &registry.image("busybox:1"),
        &[
            "--secret",
            "mine",
            "--secret",
            "source=mine,target=/etc/shoal-test-evil",
            "--limit-pids",
            "40",
        ],
    )?;
    // An absolute target is a path in the task's own root, never the host's.
    assert!(log.contains("EVIL s3cr3t"), "{log}");
    assert!(!std::path::Path::new("/etc/shoal-test-evil").exists());
    assert!(log.contains("uid=0(root) gid=0(root)"), "{log}");
    assert!(
        log.contains("PID1 sh -c id"),
        "the task's own program is PID 1: {log}"
    );
    // Docker's 14 default capabilities, a seccomp filter, no_new_privs.
    assert!(log.contains("CapEff:\t00000000a80425fb"), "{log}");
    assert!(log.contains("Seccomp:\t2"), "{log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(
        log.contains("shoal-demo busybox"),
        "/ is the image's: {log}"
    );
    assert!(log.contains("mine") && !log.contains("other\n"), "{log}");
    assert!(log.contains("STATE-HIDDEN"), "{log}");
    assert!(log.contains("OTHER-SECRET-HIDDEN"), "{log}");
    assert!(log.contains("MOUNT-DENIED"), "{log}");
    assert!(log.contains("ROOT-WRITABLE"), "{log}");
    let forked: usize = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("FORKED "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(
        forked <= 40,
        "the pids limit holds a fork loop: {forked} processes\n{log}"
    );

    // The image's user, and what a service adds and takes away.
    let log = probe(&cluster, "user", &registry.image("user:1"), &["--init"])?;
    assert!(log.contains("uid=1000(app) gid=1000(app)"), "{log}");
    assert!(
        log.contains("PID1 /sbin/docker-init -- /bin/sh"),
        "--init: {log}"
    );
    assert!(log.contains("CapEff:\t0000000000000000"), "{log}");
    let log = probe(
        &cluster,
        "admin",
        &registry.image("busybox:1"),
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--read-only",
            "--host",
            "db:10.1.2.3",
        ],
    )?;
    assert!(
        log.contains("10.1.2.3\tdb"),
        "--host reaches /etc/hosts: {log}"
    );
    assert!(log.contains("MOUNT-OK"), "{log}");
    assert!(log.contains("ROOT-READ-ONLY"), "{log}");
    Ok(())
}

#[test]
fn private_images_pull_with_registry_auth_and_failures_are_clear() -> anyhow::Result<()> {
    let (cluster, public) = Cluster::embedded_swarm(2)?;
    let private = cluster.private_registry(0, "alice", "s3cr3t-pw")?;
    let create = |name: &str, image: &str, extra: &[&str]| {
        let mut args = vec!["service", "create", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push(image);
        cluster.shoal(0, &args).ok()
    };
    let error_of = |name: &str, want: &str| {
        eventually(
            &format!("{name} fails with {want:?}"),
            Duration::from_secs(30),
            || {
                let errors = cluster.task_errors(name)?;
                anyhow::ensure!(errors.contains(want), "{errors}");
                Ok(())
            },
        )
    };

    // Without credentials the private registry refuses; a missing tag and
    // an unreachable registry each say so.
    create("anonymous", &private.image("web:1"), &[])?;
    error_of("anonymous", "access denied")?;
    create("missing", &public.image("web:404"), &[])?;
    error_of("missing", "not found")?;
    let nowhere = format!("{}:5999/shoal-demo/web:1", cluster.addr(1));
    create("nowhere", &nowhere, &[])?;
    error_of("nowhere", "cannot reach")?;

    let zeros = "0".repeat(64);
    create(
        "wrong-digest",
        &public.image(&format!("web@sha256:{zeros}")),
        &[],
    )?;
    error_of("wrong-digest", "not found")?;
    // A layer that is not what its digest says is refused, and leaves
    // nothing half-unpacked on the node.
    tamper_blobs(public.storage())?;
    create(
        "corrupt",
        &public.image("busybox:1"),
        &["--constraint", "node.role==worker"],
    )?;
    error_of("corrupt", "digest")?;
    let store = cluster.state_dir(1).join("images");
    for dir in ["tmp", "layers"] {
        let left: Vec<_> = std::fs::read_dir(store.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{dir}/ after a corrupt pull: {left:?}");
    }

    // `docker login` keeps credentials in config.json; the CLI sends them
    // with --with-registry-auth, and only the task's node pulls with them.
    let docker_config = cluster.dir().join("docker");
    std::fs::create_dir_all(&docker_config)?;
    std::fs::write(
        docker_config.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcjN0LXB3"}}}}}}"#,
            private.addr()
        ),
    )?;
    let config = docker_config.to_string_lossy().into_owned();
    cluster
        .shoal_env(
            0,
            &[("DOCKER_CONFIG", &config)],
            &[
                "service",
                "create",
                "-d",
                "--name",
                "private",
                "--replicas",
                "2",
                "--with-registry-auth",
                &private.image("web:1"),
            ],
        )
        .ok()?;
    eventually("the private image runs", Duration::from_secs(60), || {
        let running = cluster.running_tasks("private")?;
        anyhow::ensure!(running.len() == 2, "{}", cluster.task_errors("private")?);
        Ok(())
    })?;
    // The credentials are never shown back, and an update keeps them.
    for args in [
        &["service", "inspect", "private"][..],
        &["service", "ps", "--no-trunc", "private"][..],
        &["service", "ls"][..],
    ] {
        let out = cluster.shoal(0, args).ok()?;
        assert!(
            !out.contains("s3cr3t"),
            "{args:?} shows the password: {out}"
        );
    }
    cluster
        .shoal(0, &["service", "update", "-d", "--force", "private"])
        .ok()?;
    eventually(
        "the private image runs after --force",
        Duration::from_secs(60),
        || {
            let errors = cluster.task_errors("private")?;
            anyhow::ensure!(!errors.contains("access denied"), "{errors}");
            anyhow::ensure!(cluster.running_tasks("private")?.len() == 2, "{errors}");
            Ok(())
        },
    )?;
    Ok(())
}

/// Flips a byte in the middle of every large blob (the layers) the
/// registry stores, behind its digests' back.
fn tamper_blobs(storage: &std::path::Path) -> anyhow::Result<()> {
    let blobs = storage.join("docker/registry/v2/blobs/sha256");
    let mut tampered = 0;
    for prefix in std::fs::read_dir(&blobs)?.flatten() {
        for blob in std::fs::read_dir(prefix.path())?.flatten() {
            let data = blob.path().join("data");
            let mut bytes = std::fs::read(&data)?;
            if bytes.len() > 4096 {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&data, bytes)?;
                tampered += 1;
            }
        }
    }
    anyhow::ensure!(tampered > 0, "no layer blob under {}", blobs.display());
    Ok(())
}
