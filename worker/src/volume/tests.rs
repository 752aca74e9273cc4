use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn none(_: &str) -> Vec<String> {
    Vec::new()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn store() -> (tempfile::TempDir, VolumeStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = VolumeStore::open(dir.path().join("volumes")).unwrap();
    (dir, store)
}

#[test]
fn names_follow_dockers_rule() {
    for ok in ["db-data", "a1", "stack_data", "x.y-z", "0abc"] {
        assert!(check_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a",
        "-db",
        ".hidden",
        "_x",
        "a/b",
        "../etc",
        "a b",
        "/srv/data",
    ] {
        let err = check_name(bad).unwrap_err();
        assert!(matches!(err, VolumeError::BadName(_)), "{bad}");
    }
    let err = check_name("/srv/data").unwrap_err().to_string();
    assert!(err.contains("use absolute path"), "{err}");
}

#[test]
fn ensure_creates_once_and_keeps_the_first_creation() {
    let (_dir, store) = store();
    let labels = map(&[("tier", "db")]);
    let v = store
        .ensure("db-data", "", &labels, &BTreeMap::new())
        .unwrap();
    assert_eq!(v.driver, LOCAL_DRIVER);
    assert_eq!(v.labels, labels);
    assert!(!v.anonymous);
    assert!(v.mountpoint.ends_with("db-data/_data"));
    assert!(v.mountpoint.is_dir());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&v.mountpoint), 0o755);
    assert_eq!(mode(store.root()), 0o700);
    std::fs::write(v.mountpoint.join("f"), "kept").unwrap();

    let again = store
        .ensure(
            "db-data",
            "local",
            &map(&[("other", "x")]),
            &BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(again, v, "the first creation's labels stay");
    assert_eq!(
        std::fs::read_to_string(again.mountpoint.join("f")).unwrap(),
        "kept"
    );
    assert_eq!(store.list().len(), 1);
}

#[test]
fn bad_drivers_names_and_options_are_refused() {
    let (_dir, store) = store();
    let none_map = BTreeMap::new();
    let err = store
        .ensure("data", "rexray", &none_map, &none_map)
        .unwrap_err();
    assert!(matches!(err, VolumeError::UnsupportedDriver(_)), "{err}");
    assert!(err.to_string().contains("\"rexray\""), "{err}");
    let err = store.ensure("a", "", &none_map, &none_map).unwrap_err();
    assert!(matches!(err, VolumeError::BadName(_)), "{err}");
    let err = store
        .ensure("data", "", &none_map, &map(&[("type", "tmpfs")]))
        .unwrap_err();
    assert!(matches!(err, VolumeError::BadOption(_)), "{err}");
    assert!(store.list().is_empty());
    assert!(store.get("data").is_none());
}

#[test]
fn meta_survives_reopening() {
    let (dir, store) = store();
    let opts = map(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]);
    let v = store
        .ensure("cache", "local", &map(&[("k", "v")]), &opts)
        .unwrap();
    let anon = store.anonymous().unwrap();
    drop(store);
    // A crash's leftover work dir goes at the next open.
    std::fs::create_dir_all(dir.path().join("volumes/.new-dead/_data")).unwrap();
    let store = VolumeStore::open(dir.path().join("volumes")).unwrap();
    assert_eq!(store.get("cache"), Some(v));
    assert_eq!(store.get(&anon.name), Some(anon.clone()));
    assert!(!dir.path().join("volumes/.new-dead").exists());
    assert_eq!(store.list().len(), 2);
    assert_eq!(anon.name.len(), 64);
    assert!(anon.name.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(anon.anonymous && anon.labels.contains_key(ANONYMOUS_LABEL));
}

#[test]
fn remove_refuses_a_volume_in_use() {
    let (_dir, store) = store();
    let v = store
        .ensure("db", "", &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    let used = |name: &str| {
        if name == "db" {
            vec!["task-b".to_string(), "task-a".to_string()]
        } else {
            Vec::new()
        }
    };
    let err = store.remove("db", &used).unwrap_err();
    assert_eq!(
        err.to_string(),
        "remove db: volume is in use - [task-a, task-b]"
    );
    // A task that took it and has no config on disk yet counts too.
    store.activate("db", "task-c").unwrap();
    assert_eq!(store.held_by("task-c"), ["db"]);
    let err = store.remove("db", &none).unwrap_err();
    assert!(
        matches!(err, VolumeError::InUse { ref by, .. } if by == &["task-c"]),
        "{err}"
    );
    store.release("db", "task-c", &none).unwrap();
    assert!(store.held_by("task-c").is_empty());
    let removed = store.remove("db", &none).unwrap();
    assert_eq!(removed.name, "db");
    assert!(!v.mountpoint.exists());
    assert!(matches!(
        store.remove("db", &none).unwrap_err(),
        VolumeError::NotFound(_)
    ));
    assert_eq!(
        store.remove("nope", &none).unwrap_err().to_string(),
        "get nope: no such volume"
    );
    store.activate("x1", "t").unwrap_err();
}

#[test]
fn prune_takes_unused_anonymous_volumes_unless_all() {
    let (_dir, store) = store();
    let none_map = BTreeMap::new();
    store.ensure("named", "", &none_map, &none_map).unwrap();
    let used = store.anonymous().unwrap();
    let unused = store.anonymous().unwrap();
    let in_use = |name: &str| {
        if name == used.name {
            vec!["t1".to_string()]
        } else {
            Vec::new()
        }
    };
    let gone = store.prune(&in_use, false).unwrap();
    assert_eq!(
        gone.iter().map(|v| &v.name).collect::<Vec<_>>(),
        [&unused.name]
    );
    let names: Vec<String> = store.list().into_iter().map(|v| v.name).collect();
    assert!(names.contains(&"named".to_string()) && names.contains(&used.name));
    let gone = store.prune(&in_use, true).unwrap();
    assert_eq!(
        gone.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["named"]
    );
    assert_eq!(store.list().len(), 1);
}

#[test]
fn a_device_volume_is_mounted_while_used() {
    if !crate::testing::root(module_path!()) {
        return;
    }
    let (_dir, store) = store();
    let opts = map(&[
        ("type", "tmpfs"),
        ("device", "tmpfs"),
        ("o", "size=1m,mode=700"),
    ]);
    let v = store.ensure("cache", "", &BTreeMap::new(), &opts).unwrap();
    assert!(
        !local::is_mounted(&v.mountpoint),
        "mounted at first use only"
    );
    store.activate("cache", "t1").unwrap();
    store.activate("cache", "t2").unwrap();
    assert!(local::is_mounted(&v.mountpoint));
    let mode = std::fs::metadata(&v.mountpoint)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the tmpfs's own root");
    store.release("cache", "t1", &none).unwrap();
    assert!(local::is_mounted(&v.mountpoint), "t2 still uses it");
    // t2's config on disk says it uses the volume: still mounted.
    store.forget("t2");
    store
        .release("cache", "t3", &|_| vec!["t2".to_string()])
        .unwrap();
    assert!(local::is_mounted(&v.mountpoint));
    store.release("cache", "t2", &none).unwrap();
    assert!(!local::is_mounted(&v.mountpoint), "the last user went");

    // A bind volume's host data survives the volume's removal.
    let host = _dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("precious"), "x").unwrap();
    let opts = map(&[
        ("type", "none"),
        ("device", &host.to_string_lossy()),
        ("o", "bind"),
    ]);
    let b = store.ensure("bound", "", &BTreeMap::new(), &opts).unwrap();
    store.activate("bound", "t4").unwrap();
    assert!(b.mountpoint.join("precious").exists());
    store.forget("t4");
    store.remove("bound", &none).unwrap();
    assert!(host.join("precious").exists());
}
