use std::collections::BTreeMap;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: VolumeStore,
    host: PathBuf,
}

/// An image root with `/data/seed.txt` (mode 0640) in a 0750 `/data`,
/// `/var/run` → `../run`, and a host directory.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("data/sub")).unwrap();
    std::fs::write(root.join("data/seed.txt"), "from the image").unwrap();
    std::fs::set_permissions(
        root.join("data/seed.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("seed.txt", root.join("data/link")).unwrap();
    std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::create_dir_all(root.join("run/app")).unwrap();
    std::fs::create_dir_all(root.join("var")).unwrap();
    std::os::unix::fs::symlink("../run", root.join("var/run")).unwrap();
    let store = VolumeStore::open(dir.path().join("volumes")).unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    Fixture {
        _dir: dir,
        root,
        store,
        host,
    }
}

fn svc(kind: mount::Type, source: &str, target: &str) -> ServiceMount {
    ServiceMount {
        r#type: kind as i32,
        source: source.into(),
        target: target.into(),
        ..Default::default()
    }
}

fn spec(mounts: Vec<ServiceMount>) -> ContainerSpec {
    ContainerSpec {
        mounts,
        ..Default::default()
    }
}

fn options(m: &Mount) -> Vec<String> {
    m.options().clone().unwrap_or_default()
}

fn find<'a>(t: &'a TaskMounts, target: &str) -> &'a Mount {
    t.mounts
        .iter()
        .find(|m| m.destination() == Path::new(target))
        .unwrap_or_else(|| panic!("no mount at {target}: {:?}", t.mounts))
}

#[test]
fn a_named_volume_gets_the_images_content_once() {
    let f = fixture();
    let t = task_mounts(
        "t1",
        &spec(vec![svc(mount::Type::Volume, "db-data", "/data/")]),
        &[],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    assert_eq!(t.volumes, ["db-data"]);
    let v = f.store.get("db-data").unwrap();
    let m = find(&t, "/data");
    assert_eq!(m.typ().as_deref(), Some("bind"));
    assert_eq!(m.source().as_deref(), Some(v.mountpoint.as_path()));
    assert_eq!(options(m), ["rbind", "rprivate"]);
    let data = &v.mountpoint;
    assert_eq!(
        std::fs::read_to_string(data.join("seed.txt")).unwrap(),
        "from the image"
    );
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&data.join("seed.txt")), 0o640);
    assert_eq!(mode(data), 0o750, "the volume takes the directory's mode");
    assert!(data.join("sub").is_dir());
    assert_eq!(
        std::fs::read_link(data.join("link")).unwrap(),
        Path::new("seed.txt")
    );
    assert_eq!(f.store.held_by("t1"), ["db-data"]);

    // What the task wrote stays; the image does not copy over it again.
    std::fs::remove_file(data.join("seed.txt")).unwrap();
    std::fs::write(data.join("log"), "1\n").unwrap();
    task_mounts(
        "t2",
        &spec(vec![svc(mount::Type::Volume, "db-data", "/data")]),
        &[],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    assert!(!data.join("seed.txt").exists());
    assert!(data.join("log").exists());
}

#[test]
fn nocopy_read_only_and_symlinked_targets() {
    let f = fixture();
    let mut nocopy = svc(mount::Type::Volume, "empty", "/data");
    nocopy.volume_nocopy = true;
    let mut ro = svc(mount::Type::Volume, "sock", "/var/run/app");
    ro.read_only = true;
    std::fs::write(f.root.join("run/app/pidfile"), "1").unwrap();
    let t = task_mounts("t1", &spec(vec![nocopy, ro]), &[], &f.root, Some(&f.store)).unwrap();
    let empty = f.store.get("empty").unwrap().mountpoint;
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nocopy");
    assert!(options(find(&t, "/var/run/app")).contains(&"ro".to_string()));
    let sock = f.store.get("sock").unwrap().mountpoint;
    assert!(
        sock.join("pidfile").exists(),
        "/var/run/app is /run/app in the image"
    );
}

#[test]
fn binds_must_exist_and_can_be_read_only() {
    let f = fixture();
    let host = f.host.to_string_lossy().into_owned();
    let mut m = svc(mount::Type::Bind, &host, "/host");
    m.read_only = true;
    let t = task_mounts("t1", &spec(vec![m]), &[], &f.root, None).unwrap();
    let b = find(&t, "/host");
    assert_eq!(b.source().as_deref(), Some(f.host.as_path()));
    assert_eq!(options(b), ["rbind", "rprivate", "ro"]);
    assert!(t.volumes.is_empty());

    let missing = format!("{host}/nope");
    let err = task_mounts(
        "t1",
        &spec(vec![svc(mount::Type::Bind, &missing, "/host")]),
        &[],
        &f.root,
        None,
    )
    .unwrap_err();
    assert!(err.is_rejection());
    assert_eq!(
        err.to_string(),
        format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {missing}"
        )
    );
}

#[test]
fn tmpfs_takes_dockers_options() {
    let f = fixture();
    let mut m = svc(mount::Type::Tmpfs, "", "/scratch");
    m.tmpfs_size_bytes = 64 << 20;
    m.tmpfs_mode = 0o1770;
    let mut ro = svc(mount::Type::Tmpfs, "", "/frozen");
    ro.read_only = true;
    ro.tmpfs_size_bytes = 1000;
    let t = task_mounts("t1", &spec(vec![m, ro]), &[], &f.root, None).unwrap();
    let s = find(&t, "/scratch");
    assert_eq!(s.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(s),
        ["noexec", "nosuid", "nodev", "size=64m", "mode=1770"]
    );
    assert_eq!(
        options(find(&t, "/frozen")),
        ["noexec", "nosuid", "nodev", "ro", "size=1000"]
    );
}

#[test]
fn image_volumes_get_anonymous_volumes_unless_mounted_over() {
    let f = fixture();
    let t = task_mounts(
        "t1",
        &spec(vec![svc(mount::Type::Tmpfs, "", "/cache")]),
        &["/data".into(), "/cache/".into()],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    assert_eq!(t.mounts.len(), 2);
    assert_eq!(find(&t, "/cache").typ().as_deref(), Some("tmpfs"));
    assert_eq!(t.volumes.len(), 1);
    let anon = f.store.get(&t.volumes[0]).unwrap();
    assert!(anon.anonymous && anon.name.len() == 64);
    assert!(
        anon.mountpoint.join("seed.txt").exists(),
        "copied as Docker"
    );
    assert_eq!(
        find(&t, "/data").source().as_deref(),
        Some(anon.mountpoint.as_path())
    );
    // Each task gets its own.
    let t2 = task_mounts(
        "t2",
        &spec(vec![]),
        &["/data".into()],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    assert_ne!(t2.volumes, t.volumes);
    // A volume mount without a source is anonymous too.
    let t3 = task_mounts(
        "t3",
        &spec(vec![svc(mount::Type::Volume, "", "/x")]),
        &[],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    assert!(f.store.get(&t3.volumes[0]).unwrap().anonymous);
    // Without a store the image's paths stay in the task's root.
    let t4 = task_mounts("t4", &spec(vec![]), &["/data".into()], &f.root, None).unwrap();
    assert!(t4.mounts.is_empty());
}

#[test]
fn mounts_go_parent_first_and_bad_ones_are_rejected() {
    let f = fixture();
    let t = task_mounts(
        "t1",
        &spec(vec![
            svc(mount::Type::Tmpfs, "", "/data/logs/deep"),
            svc(mount::Type::Volume, "outer", "/data"),
            svc(mount::Type::Tmpfs, "", "/data/logs"),
        ]),
        &[],
        &f.root,
        Some(&f.store),
    )
    .unwrap();
    let order: Vec<&Path> = t.mounts.iter().map(|m| m.destination().as_path()).collect();
    assert_eq!(
        order,
        [
            Path::new("/data"),
            Path::new("/data/logs"),
            Path::new("/data/logs/deep")
        ]
    );

    let reject = |mounts: Vec<ServiceMount>| {
        let err = task_mounts("t9", &spec(mounts), &[], &f.root, Some(&f.store)).unwrap_err();
        assert!(err.is_rejection(), "{err}");
        err.to_string()
    };
    let err = reject(vec![
        svc(mount::Type::Tmpfs, "", "/a"),
        svc(mount::Type::Tmpfs, "", "/a/"),
    ]);
    assert_eq!(err, "Duplicate mount point: /a");
    assert!(reject(vec![svc(mount::Type::Tmpfs, "", "rel")]).contains("must be absolute"));
    assert!(reject(vec![svc(mount::Type::Volume, "v1", "/")]).contains("can't be '/'"));
    assert!(reject(vec![svc(mount::Type::Volume, "-bad", "/b")]).contains("invalid characters"));
    let mut other = svc(mount::Type::Volume, "nfsvol", "/n");
    other.volume_driver = "rexray".into();
    // Volumes taken before the failing one are not held for the task.
    let err = reject(vec![svc(mount::Type::Volume, "first", "/a"), other]);
    assert!(err.contains("\"rexray\" is not supported"), "{err}");
    assert!(f.store.held_by("t9").is_empty());
    let mut opts = svc(mount::Type::Volume, "opts", "/o");
    opts.volume_options = BTreeMap::from([("type".into(), "nfs".into())]);
    assert!(reject(vec![opts]).contains("missing required option"));
    let err = task_mounts(
        "t1",
        &spec(vec![svc(mount::Type::Volume, "v1", "/v")]),
        &[],
        &f.root,
        None,
    )
    .unwrap_err();
    assert!(err.is_rejection(), "{err}");
}

#[test]
fn paths_resolve_inside_the_root() {
    let f = fixture();
    let r = &f.root;
    std::os::unix::fs::symlink("/run", r.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../..", r.join("up")).unwrap();
    std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
    assert_eq!(resolve_in_root(r, "/var/run/app"), Some(r.join("run/app")));
    assert_eq!(resolve_in_root(r, "/abs/app"), Some(r.join("run/app")));
    assert_eq!(resolve_in_root(r, "/up/data"), Some(r.join("data")));
    assert_eq!(resolve_in_root(r, "/../../data"), Some(r.join("data")));
    assert_eq!(resolve_in_root(r, "/loop"), None);
    assert_eq!(resolve_in_root(r, "/missing/x"), None);
}
