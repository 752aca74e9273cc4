//! `shoal image` and `shoal volume` on a real daemon with the embedded
//! engine: pulls from a real registry with docker-pull-like progress, `ls`,
//! `rm` and `prune` that keep what tasks use, `load` of a docker-archive
//! tarball that a service then runs without any registry, and the volume
//! commands' round trip.

use std::process::Command;
use std::time::Duration;

use shoal_tests::registry::demo_images;
use shoal_tests::{Cluster, eventually};

/// `image ls` as `repo:tag` lines.
fn image_names(cluster: &Cluster) -> anyhow::Result<String> {
    cluster
        .shoal(0, &["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
}

/// Waits for `service`'s task to run.
fn wait_running(cluster: &Cluster, service: &str) -> anyhow::Result<()> {
    eventually(&format!("{service} runs"), Duration::from_secs(60), || {
        let ps = cluster.task_errors(service)?;
        anyhow::ensure!(ps.starts_with("Running"), "{service}: {ps}");
        Ok(())
    })
}

#[test]
fn images_pull_list_remove_prune_and_load() -> anyhow::Result<()> {
    let (cluster, registry) = Cluster::embedded_swarm(1)?;
    let web = registry.image("web:1");
    let busybox = registry.image("busybox:1");

    // A first pull shows every layer's progress, then the digest.
    let out = cluster.shoal(0, &["image", "pull", &web]).ok()?;
    for want in [
        "1: Pulling from shoal-demo/web",
        ": Pulling fs layer",
        ": Downloading ",
        ": Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {web}"),
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    assert_eq!(out.lines().last(), Some(web.as_str()), "{out}");
    assert!(image_names(&cluster)?.contains(&format!("{}/shoal-demo/web:1", registry.addr())));
    let table = cluster.shoal(0, &["image", "ls"]).ok()?;
    assert!(
        table.starts_with("REPOSITORY") && table.contains("IMAGE ID"),
        "{table}"
    );

    // Again: nothing new.
    let out = cluster.shoal(0, &["image", "pull", &web]).ok()?;
    assert!(
        out.contains(&format!("Status: Image is up to date for {web}")),
        "{out}"
    );
    assert!(
        out.contains(": Already exists") && !out.contains("Downloading"),
        "{out}"
    );
    // Quiet: the name only. busybox:1 is web:1's lower layer: no download.
    let out = cluster.shoal(0, &["image", "pull", "-q", &busybox]).ok()?;
    assert_eq!(out.trim(), busybox);

    // A task runs web:1: rm refuses it, prune -a keeps it.
    cluster
        .shoal(0, &["service", "create", "-d", "--name", "web", &web])
        .ok()?;
    wait_running(&cluster, "web")?;
    let rm = cluster.shoal(0, &["image", "rm", &web]);
    assert!(!rm.success(), "{}", rm.stdout);
    assert!(
        rm.stderr
            .contains("conflict: unable to remove repository reference")
            && rm.stderr.contains("is using its referenced image"),
        "{}",
        rm.stderr
    );
    let out = cluster.shoal(0, &["image", "prune", "-a", "-f"]).ok()?;
    assert!(out.contains("Deleted Images:"), "{out}");
    assert!(out.contains(&format!("untagged: {busybox}")), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let names = image_names(&cluster)?;
    assert!(
        names.contains("shoal-demo/web:1") && !names.contains("busybox"),
        "{names}"
    );
    // Nothing dangling is left.
    let out = cluster.shoal(0, &["image", "prune", "-f"]).ok()?;
    assert_eq!(out, "Total reclaimed space: 0B\n");

    // An image no task uses goes, with all its names.
    cluster.shoal(0, &["image", "pull", "-q", &busybox]).ok()?;
    let out = cluster.shoal(0, &["image", "rm", &busybox]).ok()?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("Untagged: {busybox}"));
    assert!(
        lines[1].starts_with(&format!(
            "Untagged: {}/shoal-demo/busybox@sha256:",
            registry.addr()
        )),
        "{out}"
    );
    assert!(lines[2].starts_with("Deleted: sha256:"), "{out}");
    let missing = cluster.shoal(0, &["image", "pull", &registry.image("nope:1")]);
    assert!(
        !missing.success() && missing.stderr.contains("nope:1: not found"),
        "{}",
        missing.stderr
    );

    // An image from a tarball runs with no registry at all.
    drop(registry);
    let tarball = cluster.dir().join("busybox.tar");
    let layout = demo_images()?.join("oci");
    let copied = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q"])
        .arg(format!("oci:{}:busybox-1", layout.display()))
        .arg(format!(
            "docker-archive:{}:shoal-demo/busybox:1",
            tarball.display()
        ))
        .output()?;
    anyhow::ensure!(
        copied.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let out = cluster
        .shoal(0, &["image", "load", "-i", &tarball.to_string_lossy()])
        .ok()?;
    assert_eq!(out, "Loaded image: shoal-demo/busybox:1\n");
    let inspect = cluster
        .shoal(
            0,
            &[
                "image",
                "inspect",
                "--format",
                "{{json .RepoTags}}",
                "shoal-demo/busybox:1",
            ],
        )
        .ok()?;
    assert_eq!(inspect.trim(), r#"["shoal-demo/busybox:1"]"#);
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "loaded",
                "shoal-demo/busybox:1",
                "sleep",
                "3600",
            ],
        )
        .ok()?;
    wait_running(&cluster, "loaded")?;

    // A volume a task mounts stays.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "writer",
                "--mount",
                "type=volume,source=cache,target=/cache",
                "shoal-demo/busybox:1",
                "sh",
                "-c",
                "echo hi >/cache/f; exec sleep 3600",
            ],
        )
        .ok()?;
    wait_running(&cluster, "writer")?;
    let rm = cluster.shoal(0, &["volume", "rm", "cache"]);
    assert!(
        !rm.success() && rm.stderr.contains("remove cache: volume is in use - ["),
        "{}",
        rm.stderr
    );
    let used = cluster
        .shoal(0, &["volume", "ls", "-q", "--filter", "dangling=false"])
        .ok()?;
    assert_eq!(used, "cache\n");
    let out = cluster.shoal(0, &["volume", "prune", "-a", "-f"]).ok()?;
    assert_eq!(out, "Total reclaimed space: 0B\n");

    let missing = cluster.shoal(0, &["image", "inspect", "nope:1"]);
    assert!(
        !missing.success() && missing.stderr.contains("No such image: nope:1"),
        "{}",
        missing.stderr
    );
    Ok(())
}

#[test]
fn other_engines_say_which_tool_to_use() -> anyhow::Result<()> {
    let cluster = Cluster::builder().hosts(1).engine("process").start()?;
    for args in [&["image", "ls"][..], &["volume", "create", "v"]] {
        let out = cluster.shoal(0, args);
        assert!(
            !out.success() && out.stderr.contains("this node's engine is process"),
            "{args:?}: {}",
            out.stderr
        );
    }
    Ok(())
}

#[test]
fn volumes_create_list_inspect_remove_prune() -> anyhow::Result<()> {
    let cluster = Cluster::builder().hosts(1).engine("embedded").start()?;
    let out = cluster
        .shoal(
            0,
            &[
                "volume", "create", "--label", "team=web", "--driver", "local", "data",
            ],
        )
        .ok()?;
    assert_eq!(out, "data\n");
    let generated = cluster.shoal(0, &["volume", "create"]).ok()?;
    let generated = generated.trim().to_string();
    assert!(
        generated.len() == 64 && generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    let other = cluster.shoal(0, &["volume", "create", "--driver", "nfs", "x"]);
    assert!(!other.success(), "only the local driver");

    let table = cluster.shoal(0, &["volume", "ls"]).ok()?;
    assert!(table.starts_with("DRIVER    VOLUME NAME\n"), "{table}");
    assert!(table.contains("local     data\n"), "{table}");
    let labelled = cluster
        .shoal(0, &["volume", "ls", "-q", "--filter", "label=team=web"])
        .ok()?;
    assert_eq!(labelled, "data\n");
    let named = cluster
        .shoal(0, &["volume", "ls", "-q", "--filter", "name=dat"])
        .ok()?;
    assert_eq!(named, "data\n");

    let inspect = cluster.shoal(0, &["volume", "inspect", "data"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&inspect)?;
    assert_eq!(v[0]["Name"], "data");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Labels"]["team"], "web");
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap_or_default().to_string();
    assert!(
        mountpoint.starts_with(&cluster.state_dir(0).display().to_string())
            && std::path::Path::new(&mountpoint).is_dir(),
        "{mountpoint}"
    );
    std::fs::write(std::path::Path::new(&mountpoint).join("f"), vec![0u8; 5000])?;

    // Without -a prune keeps named volumes; with it, the unused ones go.
    let out = cluster.shoal(0, &["volume", "prune", "-f"]).ok()?;
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = cluster.shoal(0, &["volume", "rm", &generated]).ok()?;
    assert_eq!(out.trim(), generated);
    let out = cluster.shoal(0, &["volume", "prune", "-a", "-f"]).ok()?;
    assert_eq!(
        out,
        "Deleted Volumes:\ndata\n\nTotal reclaimed space: 5kB\n"
    );
    assert_eq!(cluster.shoal(0, &["volume", "ls", "-q"]).ok()?, "");

    let gone = cluster.shoal(0, &["volume", "inspect", "data"]);
    assert!(
        !gone.success() && gone.stderr.contains("No such volume: data"),
        "{}",
        gone.stderr
    );
    let rm = cluster.shoal(0, &["volume", "rm", "data"]);
    assert!(
        !rm.success() && rm.stderr.contains("no such volume"),
        "{}",
        rm.stderr
    );
    cluster.shoal(0, &["volume", "rm", "-f", "data"]).ok()?;
    Ok(())
}
