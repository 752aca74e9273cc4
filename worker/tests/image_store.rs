//! The image store against a real registry (Debian's `docker-registry`),
//! with demo images built by `deploy/images.sh` (umoci, skopeo, busybox):
//! no Docker engine, no network beyond loopback. Runs as root (overlay
//! mounts, device nodes, ownership). Missing tools fail the test.

#[path = "image_store/support.rs"]
mod support;

use shoal_worker::image::{
    Image, ImageError, ImageStore, PullProgress, RegistryAuth, RegistryConfig,
};
use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn pulls_multi_layer_images_ready_for_overlay() {
    let fx = Fixture::new(None);
    let events = Events::default();
    let name = fx.registry.name("web:2");
    let web = fx
        .store()
        .pull(&name, &anon(), &|p| events.push(p))
        .await
        .unwrap();

    assert_eq!(web.references, std::slice::from_ref(&name));
    assert!(
        web.repo_digest
            .as_ref()
            .unwrap()
            .starts_with(&format!("{}/shoal-demo/web@sha256:", fx.registry.addr))
    );
    assert!(
        web.id.starts_with("sha256:") && web.size > 1_000_000,
        "{web:?}"
    );
    assert_eq!(web.layers.len(), 4);
    let first = events.0.lock().unwrap()[0].clone();
    assert!(
        matches!(&first, PullProgress::Resolved { layers: 4, reference, .. } if *reference == name),
        "{first:?}"
    );
    assert_eq!(events.layers_done(false), 4);
    assert!(matches!(
        events.0.lock().unwrap().last(),
        Some(PullProgress::Done)
    ));

    let c = &web.config;
    assert_eq!(c.entrypoint, ["httpd"]);
    assert_eq!(c.cmd, ["-f", "-p", "80", "-h", "/www"]);
    assert_eq!(c.exposed_ports, ["80/tcp"]);
    assert_eq!(c.stop_signal, "SIGTERM");
    assert_eq!(c.env, ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    assert_eq!(
        c.labels.get("shoal.demo.version").map(String::as_str),
        Some("2")
    );

    // Each layer as unpacked, lowest first.
    let [base, www, whiteout, v2] = &web.layers[..] else {
        unreachable!()
    };
    let busybox = fs::metadata(base.join("bin/busybox")).unwrap();
    assert_eq!(
        fs::metadata(base.join("bin/sh")).unwrap().ino(),
        busybox.ino()
    );
    assert_eq!(busybox.mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(base.join("bin/ls")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(base.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(www.join("www/only-in-v1.html").is_file());
    let wh = fs::symlink_metadata(whiteout.join("www/only-in-v1.html")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(v2.join("www/cgi-bin/index.cgi").is_file());

    // As the engine mounts them: top first.
    let mnt = Overlay::mount(&web, &fx.dir.path().join("mnt-web"));
    let page = fs::read_to_string(mnt.0.join("www/cgi-bin/index.cgi")).unwrap();
    assert!(page.contains("web v2"), "{page}");
    assert!(!mnt.0.join("www/only-in-v1.html").exists());
    assert!(mnt.0.join("bin/busybox").is_file() && mnt.0.join("etc/motd").is_file());
    drop(mnt);

    // A Docker v2 schema 2 image sharing the base layer: not downloaded again.
    let events = Events::default();
    let user = fx
        .store()
        .pull(&fx.registry.name("user:1"), &anon(), &|p| events.push(p))
        .await
        .unwrap();
    assert_eq!(
        (events.layers_done(true), events.layers_done(false)),
        (1, 2)
    );
    assert_eq!(user.layers[0], web.layers[0]);
    let c = &user.config;
    assert_eq!(c.user, "1000:1000");
    assert!(c.env.contains(&"FOO=bar".to_string()));
    assert_eq!(c.working_dir, "/work");
    assert_eq!(c.volumes, ["/data"]);
    assert_eq!(c.cmd, ["sh"]);
    let mnt = Overlay::mount(&user, &fx.dir.path().join("mnt-user"));
    // The opaque /etc hides the base layer's files.
    assert!(!mnt.0.join("etc/motd").exists());
    assert!(
        fs::read_to_string(mnt.0.join("etc/passwd"))
            .unwrap()
            .contains("app:x:1000")
    );
    let work = fs::metadata(mnt.0.join("work")).unwrap();
    assert_eq!((work.uid(), work.gid()), (1000, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_download_once() {
    let fx = Fixture::new(None);
    let store = fx.store();

    // Two ensures of one image: one download.
    let busybox = fx.registry.name("busybox:1");
    let auth = anon();
    let (a, b) = tokio::join!(store.ensure(&busybox, &auth), store.ensure(&busybox, &auth));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);

    // Two pulls of an image sharing busybox's layer: its own layers and
    // config once, the shared layer never.
    let web = fx.registry.name("web:1");
    let events = Events::default();
    let progress = |p| events.push(p);
    let (c, d) = tokio::join!(
        store.pull(&web, &auth, &progress),
        store.pull(&web, &auth, &progress)
    );
    let (c, d) = (c.unwrap(), d.unwrap());
    assert_eq!(c, d);
    assert_eq!(
        events.layers_done(false),
        1,
        "{:?}",
        events.0.lock().unwrap()
    );
    assert_eq!(events.layers_done(true), 3);

    let layout = fx.images().join("oci");
    let mut blobs: HashMap<String, usize> = HashMap::new();
    for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let digest = format!("sha256:{}", entry.unwrap().file_name().to_string_lossy());
        blobs.insert(digest.clone(), fx.registry.blob_gets(&digest));
    }
    assert!(blobs.values().all(|n| *n <= 1), "{blobs:?}");
    // busybox: config + layer; web:1: config + its own layer.
    assert_eq!(blobs.values().sum::<usize>(), 4, "{blobs:?}");
    assert_eq!(fs::read_dir(fx.root().join("layers")).unwrap().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_errors_leave_nothing_behind() {
    let fx = Fixture::new(None);
    let store = fx.store();
    let err = store
        .pull(&fx.registry.name("web:9"), &anon(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("shoal-demo/web:9"), "{err}");
    let err = store
        .ensure(&fx.registry.name("nope:1"), &anon())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err:?}");
    let err = store
        .resolve_digest(&fx.registry.name("web:9"), &anon())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err:?}");

    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("127.0.0.1:{port}/shoal-demo/web:1");
    let err = store.pull(&down, &anon(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ImageError::Unreachable(_)), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    let err = store
        .pull("Not A Reference", &anon(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::BadReference(_)), "{err:?}");
    assert!(store.get("web").is_none());
    fx.assert_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn private_registry_needs_credentials() {
    let fx = Fixture::new(Some(("alice", "s3cret-pw")));
    let store = fx.store();
    let name = fx.registry.name("web:1");

    let err = store.pull(&name, &anon(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains(&fx.registry.addr), "{err}");
    let wrong = RegistryAuth {
        username: "alice".into(),
        password: "not-the-pw".into(),
    };
    let err = store.pull(&name, &wrong, &|_| {}).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-pw") && !format!("{err:?}").contains("not-the-pw"));
    fx.assert_empty();

    let alice = RegistryAuth {
        username: "alice".into(),
        password: "s3cret-pw".into(),
    };
    let image = store.pull(&name, &alice, &|_| {}).await.unwrap();
    let digest = store.resolve_digest(&name, &alice).await.unwrap();
    assert_eq!(
        image.repo_digest,
        Some(format!("{}/shoal-demo/web@{digest}", fx.registry.addr))
    );
    assert_eq!(
        store.ensure(&name, &anon()).await.unwrap(),
        image,
        "local: no registry asked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blobs_are_refused() {
    let fx = Fixture::new(None);
    let store = fx.store();
    let name = fx.registry.name("busybox:1");
    let digest = store.resolve_digest(&name, &anon()).await.unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(fx.registry.blob_file(&digest)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();

    // Flip a byte in the middle of the layer, in the registry's storage.
    let file = fx.registry.blob_file(layer);
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let err = store.pull(&name, &anon(), &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, ImageError::DigestMismatch { ref expected, .. } if expected == layer),
        "{err:?}"
    );
    fx.assert_empty();

    // Truncated: same answer, still nothing left.
    fs::write(&file, &bytes[..middle]).unwrap();
    let err = store.pull(&name, &anon(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    fx.assert_empty();
}

/// Pushes an image made of one raw layer (and a config claiming `diff_id`).
async fn push_raw(registry: &Registry, name: &str, layer: Vec<u8>, diff_id: &str) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let reference: oci_client::Reference = format!("{}/{name}", registry.addr).parse().unwrap();
    client
        .push(
            &reference,
            &[ImageLayer::oci_v1_gzip(layer, None)],
            Config::oci_v1(serde_json::to_vec(&config).unwrap(), None),
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_layers_are_refused() {
    let fx = Fixture::new(None);
    let store = fx.store();

    // A layer escaping with "..": digests right, content refused.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append(&header, &b"x"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    push_raw(&fx.registry, "bad/escape:1", gzip(&tar), &sha256(&tar)).await;
    let err = store
        .pull(
            &format!("{}/bad/escape:1", fx.registry.addr),
            &anon(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");
    assert!(!fx.dir.path().join("escape").exists() && !fx.root().join("escape").exists());
    fx.assert_empty();

    // A config whose diff_id is not the layer's.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("hello").unwrap();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append(&header, &b"hi"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    push_raw(&fx.registry, "bad/diffid:1", gzip(&tar), &sha256(b"other")).await;
    let err = store
        .pull(
            &format!("{}/bad/diffid:1", fx.registry.addr),
            &anon(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::DigestMismatch { ref actual, .. } if *actual == sha256(&tar)),
        "{err:?}"
    );
    fx.assert_empty();

    // Not gzip, not tar.
    push_raw(
        &fx.registry,
        "bad/garbage:1",
        gzip(b"\x1f\x8bnot really"),
        &sha256(b"x"),
    )
    .await;
    let err = store
        .pull(
            &format!("{}/bad/garbage:1", fx.registry.addr),
            &anon(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Corrupt(_) | ImageError::DigestMismatch { .. }
        ),
        "{err:?}"
    );
    fx.assert_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn image_index_picks_this_platform() {
    let fx = Fixture::new(None);
    let store = fx.store();
    fx.registry
        .copy(&fx.images(), "user-1", "shoal-demo/multi:other");
    fx.registry
        .copy(&fx.images(), "web-1", "shoal-demo/multi:this");

    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let anon_oci = oci_client::secrets::RegistryAuth::Anonymous;
    let mut entries = Vec::new();
    for (tag, arch) in [("other", "s390x"), ("this", std::env::consts::ARCH)] {
        let arch = if arch == "x86_64" {
            "amd64"
        } else if arch == "aarch64" {
            "arm64"
        } else {
            arch
        };
        let reference: oci_client::Reference =
            fx.registry.name(&format!("multi:{tag}")).parse().unwrap();
        let (body, digest) = client
            .pull_manifest_raw(
                &reference,
                &anon_oci,
                &["application/vnd.oci.image.manifest.v1+json"],
            )
            .await
            .unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": body.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index: oci_client::manifest::OciImageIndex = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let multi = fx.registry.name("multi:latest");
    client
        .push_manifest_list(&multi.parse().unwrap(), &anon_oci, index)
        .await
        .unwrap();

    let image = store.pull(&multi, &anon(), &|_| {}).await.unwrap();
    assert_eq!(
        image.config.entrypoint,
        ["httpd"],
        "the web image is this platform's"
    );
    let index_digest = store.resolve_digest(&multi, &anon()).await.unwrap();
    let repo_digest = format!("{}/shoal-demo/multi@{index_digest}", fx.registry.addr);
    assert_eq!(image.repo_digest.as_deref(), Some(repo_digest.as_str()));
    // By digest: found locally, and pullable.
    assert_eq!(store.get(&repo_digest).unwrap().id, image.id);
    let by_digest = store.pull(&repo_digest, &anon(), &|_| {}).await.unwrap();
    assert_eq!(by_digest.id, image.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_docker_save_and_oci_layout_tarballs() {
    need_tools();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    build_images(&images);
    let layout = images.join("oci");
    let store = ImageStore::open(dir.path().join("store"), RegistryConfig::default()).unwrap();

    // `docker save` format, as skopeo writes it.
    let archive = dir.path().join("web.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &format!("oci:{}:web-2", layout.display()),
        &format!("docker-archive:{}:shoal-demo/web:2", archive.display()),
    ]));
    let loaded = store.load(&archive).await.unwrap();
    assert_eq!(loaded.len(), 1);
    let web = &loaded[0];
    assert_eq!(web.references, ["docker.io/shoal-demo/web:2"]);
    assert_eq!(web.repo_digest, None);
    assert_eq!(web.layers.len(), 4);
    assert_eq!(web.config.entrypoint, ["httpd"]);
    assert_eq!(store.get("shoal-demo/web:2").unwrap().id, web.id);
    let mnt = Overlay::mount(web, &dir.path().join("mnt"));
    assert!(!mnt.0.join("www/only-in-v1.html").exists());
    assert!(
        fs::read_to_string(mnt.0.join("www/cgi-bin/index.cgi"))
            .unwrap()
            .contains("web v2")
    );
    drop(mnt);

    // The same image as an OCI archive with a name: same id, layers kept.
    let oci_archive = dir.path().join("web-oci.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &format!("oci:{}:web-2", layout.display()),
        &format!(
            "oci-archive:{}:registry.example/shoal-demo/web:2",
            oci_archive.display()
        ),
    ]));
    let again = store.load(&oci_archive).await.unwrap();
    assert_eq!(again[0].id, web.id);
    assert_eq!(again[0].layers, web.layers);
    let mut refs = again[0].references.clone();
    refs.sort();
    assert_eq!(
        refs,
        [
            "docker.io/shoal-demo/web:2",
            "registry.example/shoal-demo/web:2"
        ]
    );

    // The whole layout, gzipped: four images whose tags name no
    // repository, so unnamed; found by id.
    let tarball = dir.path().join("layout.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&layout)
        .arg("."));
    let all = store.load(&tarball).await.unwrap();
    assert_eq!(all.len(), 4);
    for image in &all {
        assert_eq!(store.get(&image.id).unwrap().id, image.id);
    }
    assert_eq!(store.list().len(), 4);
    assert_eq!(
        fs::read_dir(dir.path().join("store/layers"))
            .unwrap()
            .count(),
        6
    );

    // Not an image tarball.
    let junk = dir.path().join("junk.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&junk)
        .arg("-C")
        .arg(&images)
        .arg("."));
    fs::write(dir.path().join("plain.txt"), "hello").unwrap();
    for bad in [junk, dir.path().join("plain.txt")] {
        let err = store.load(&bad).await.unwrap_err();
        assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");
    }
    assert_eq!(
        fs::read_dir(dir.path().join("store/tmp")).unwrap().count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_and_prune_respect_in_use() {
    let fx = Fixture::new(None);
    let store = fx.store();
    let web1 = store
        .pull(&fx.registry.name("web:1"), &anon(), &|_| {})
        .await
        .unwrap();
    let web2 = store
        .pull(&fx.registry.name("web:2"), &anon(), &|_| {})
        .await
        .unwrap();
    let busybox = store
        .pull(&fx.registry.name("busybox:1"), &anon(), &|_| {})
        .await
        .unwrap();
    // The same image under a second name.
    let localhost = fx.registry.name("web:1").replace("127.0.0.1", "localhost");
    let alias = store.pull(&localhost, &anon(), &|_| {}).await.unwrap();
    assert_eq!(alias.id, web1.id);
    assert_eq!(store.get(&web1.id).unwrap().references.len(), 2);

    let err = store
        .remove(&fx.registry.name("web:2"), &|_| true)
        .unwrap_err();
    assert!(matches!(err, ImageError::InUse(_)), "{err:?}");
    let removed = store
        .remove(&fx.registry.name("web:2"), &|_| false)
        .unwrap();
    assert_eq!(removed.id, web2.id);
    assert!(store.get(&web2.id).is_none());
    // web:2's own layers went, the shared ones stayed.
    for layer in &web2.layers[2..] {
        assert!(!layer.exists(), "{}", layer.display());
    }
    for layer in &web1.layers {
        assert!(layer.is_dir(), "{}", layer.display());
    }

    // One of two names: untagged only, even "in use".
    let untagged = store.remove(&localhost, &|_| true).unwrap();
    assert_eq!(untagged.id, web1.id);
    assert_eq!(
        store.get(&web1.id).unwrap().references,
        [fx.registry.name("web:1")]
    );
    let err = store.remove("sha256:0000", &|_| false).unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err:?}");

    // Prune keeps what is in use (busybox), and the layers it needs.
    let pruned = store.prune(&|i: &Image| i.id == busybox.id).unwrap();
    assert_eq!(pruned.iter().map(|i| &i.id).collect::<Vec<_>>(), [&web1.id]);
    assert_eq!(store.list(), [store.get(&busybox.id).unwrap()]);
    let layers: Vec<_> = fs::read_dir(fx.root().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layers, busybox.layers);

    assert_eq!(store.prune(&|_| false).unwrap().len(), 1);
    fx.assert_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn reopen_finds_everything_again() {
    let mut fx = Fixture::new(None);
    let name = fx.registry.name("web:2");
    let web = fx.store().pull(&name, &anon(), &|_| {}).await.unwrap();

    // One store per root.
    let err = ImageStore::open(fx.root(), RegistryConfig::default()).unwrap_err();
    assert!(matches!(err, ImageError::Io(_)), "{err:?}");

    // Leftovers of a crash mid-pull.
    fs::create_dir_all(fx.root().join("tmp/123-0-0/www")).unwrap();
    fs::write(fx.root().join("tmp/123-1-0"), "half a blob").unwrap();
    fx.reopen();
    let store = fx.store();
    assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(store.list(), std::slice::from_ref(&web));
    assert_eq!(store.get(&name).unwrap(), web);
    assert_eq!(store.get(&web.id).unwrap(), web);
    assert_eq!(store.get(&web.id["sha256:".len()..][..12]).unwrap(), web);
    assert_eq!(store.get(web.repo_digest.as_ref().unwrap()).unwrap(), web);
    assert!(store.get("web").is_none());

    // A tag known locally is used without asking the registry.
    let gets = fx
        .registry
        .log_text()
        .lines()
        .filter(|l| l.contains("\"GET /v2/"))
        .count();
    assert_eq!(store.ensure(&name, &anon()).await.unwrap(), web);
    let after = fx
        .registry
        .log_text()
        .lines()
        .filter(|l| l.contains("\"GET /v2/"))
        .count();
    assert_eq!(gets, after);
}
