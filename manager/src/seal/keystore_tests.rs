use super::*;

fn unlocked(dir: &Path) -> (KeyStore, DataKey) {
    match KeyStore::open(dir).unwrap() {
        Opened::Unlocked(s, k) => (s, k),
        Opened::Locked(_) => panic!("expected an unlocked store"),
    }
}

fn locked(dir: &Path) -> LockedStore {
    match KeyStore::open(dir).unwrap() {
        Opened::Locked(l) => l,
        Opened::Unlocked(..) => panic!("expected a locked store"),
    }
}

/// The same key: what one seals the other opens.
fn same_key(a: &DataKey, b: &DataKey) -> bool {
    b.open(&a.seal(b"probe", b"x"), b"x").is_ok()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// True if `needle` occurs in any file under `dir`.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    fs::read_dir(dir).unwrap().any(|e| {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn unlock_key_display_and_parse() {
    let k = UnlockKey::generate();
    let s = k.to_string();
    assert!(s.starts_with("SWMKEY-1-"));
    assert_eq!(s.len(), "SWMKEY-1-".len() + 43); // 32 bytes, unpadded
    assert_eq!(s.parse::<UnlockKey>().unwrap(), k);
    // Surrounding whitespace (a pasted line) and padding are accepted.
    assert_eq!(format!("  {s}=\n").parse::<UnlockKey>().unwrap(), k);
    assert_ne!(UnlockKey::generate(), k);
    assert_eq!(format!("{k:?}"), "UnlockKey(<redacted>)");
}

#[test]
fn unlock_key_parse_errors_are_clear() {
    let err = |s: &str| s.parse::<UnlockKey>().unwrap_err().to_string();
    assert!(
        err("hello").contains("must start with SWMKEY-1-"),
        "{}",
        err("hello")
    );
    assert!(err("SWMKEY-1-!!!").contains("not valid base64"));
    let short = err("SWMKEY-1-AAAA");
    assert!(short.contains("3 bytes, 32 expected"), "{short}");
}

#[test]
fn create_unlocked_then_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = KeyStore::create(dir.path(), Lock::None).unwrap();
    assert!(!store.is_autolocked());
    assert!(KeyStore::exists(dir.path()));
    assert_eq!(mode(&dir.path().join(KEK_FILE)), 0o600);
    assert_eq!(mode(&dir.path().join(DATA_KEY_FILE)), 0o600);
    let (store2, key2) = unlocked(dir.path());
    assert!(!store2.is_autolocked());
    assert!(same_key(&key, &key2));
    // The data key itself is nowhere on disk in the clear.
    assert!(!on_disk(dir.path(), key.bytes()));
}

#[test]
fn create_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    KeyStore::create(dir.path(), Lock::None).unwrap();
    let err = KeyStore::create(dir.path(), Lock::None).unwrap_err();
    assert!(matches!(err, SealError::AlreadyExists { .. }));
    assert!(err.to_string().contains("data-key"));
}

#[test]
fn open_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!KeyStore::exists(dir.path()));
    let err = KeyStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, SealError::Missing { .. }));
    assert!(err.to_string().contains("never created"));
}

#[test]
fn autolocked_store_needs_the_unlock_key() {
    let dir = tempfile::tempdir().unwrap();
    let uk = UnlockKey::generate();
    let (store, key) = KeyStore::create(dir.path(), Lock::UnlockKey(&uk)).unwrap();
    assert!(store.is_autolocked());
    assert!(!dir.path().join(KEK_FILE).exists());
    assert!(!on_disk(dir.path(), key.bytes()));
    assert!(!on_disk(dir.path(), &uk.0[..]));

    let l = locked(dir.path());
    let err = l.unlock(&UnlockKey::generate()).unwrap_err();
    assert!(matches!(err, SealError::WrongUnlockKey { .. }));
    assert!(err.to_string().contains("wrong unlock key"));
    assert!(err.to_string().contains("data-key"));
    // The locked store can be retried after a wrong key.
    let (store2, key2) = l.unlock(&uk.to_string().parse().unwrap()).unwrap();
    assert!(store2.is_autolocked());
    assert!(same_key(&key, &key2));
}

#[test]
fn rotate_lock_keeps_the_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, key) = KeyStore::create(dir.path(), Lock::None).unwrap();
    let sealed = key.seal(b"cluster data", b"aad");

    // Turn autolock on: the KEK goes.
    let uk1 = UnlockKey::generate();
    store.rotate_lock(&key, Lock::UnlockKey(&uk1)).unwrap();
    assert!(store.is_autolocked());
    assert!(!dir.path().join(KEK_FILE).exists());
    let (_, k) = locked(dir.path()).unlock(&uk1).unwrap();
    assert_eq!(k.open(&sealed, b"aad").unwrap(), b"cluster data");

    // Change the unlock key: the old one stops working.
    let uk2 = UnlockKey::generate();
    store.rotate_lock(&key, Lock::UnlockKey(&uk2)).unwrap();
    assert!(matches!(
        locked(dir.path()).unlock(&uk1),
        Err(SealError::WrongUnlockKey { .. })
    ));
    let (_, k) = locked(dir.path()).unlock(&uk2).unwrap();
    assert_eq!(k.open(&sealed, b"aad").unwrap(), b"cluster data");

    // Turn autolock off: opens unattended again.
    store.rotate_lock(&key, Lock::None).unwrap();
    assert!(!store.is_autolocked());
    let (_, k) = unlocked(dir.path());
    assert_eq!(k.open(&sealed, b"aad").unwrap(), b"cluster data");
}

#[test]
fn rotate_lock_refuses_another_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, key) = KeyStore::create(dir.path(), Lock::None).unwrap();
    let err = store
        .rotate_lock(&DataKey::generate(), Lock::None)
        .unwrap_err();
    assert!(matches!(err, SealError::KeyMismatch { .. }));
    // Nothing changed.
    assert!(same_key(&unlocked(dir.path()).1, &key));
}

#[test]
fn damaged_data_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    KeyStore::create(dir.path(), Lock::None).unwrap();
    let path = dir.path().join(DATA_KEY_FILE);
    let good = fs::read(&path).unwrap();

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    fs::write(&path, &bad).unwrap();
    let err = KeyStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, SealError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("data-key"), "{err}");

    fs::write(&path, &good[..good.len() - 5]).unwrap();
    let err = KeyStore::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("data-key"),
        "{err}"
    );

    fs::write(&path, b"not a key").unwrap();
    let err = KeyStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("header"), "{err}");
}

#[test]
fn missing_kek_is_named() {
    let dir = tempfile::tempdir().unwrap();
    KeyStore::create(dir.path(), Lock::None).unwrap();
    fs::remove_file(dir.path().join(KEK_FILE)).unwrap();
    let err = KeyStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("kek") && err.contains("missing"), "{err}");
}

#[test]
fn crash_leftovers_do_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let uk = UnlockKey::generate();
    let (_, key) = KeyStore::create(dir.path(), Lock::None).unwrap();
    let kek = fs::read(dir.path().join(KEK_FILE)).unwrap();

    // A kill -9 mid-write leaves a partial temp file: ignored.
    fs::write(dir.path().join("data-key.tmp"), b"SHOAL-DEK-1\nU").unwrap();
    assert!(same_key(&unlocked(dir.path()).1, &key));

    // A kill -9 between the two steps of turning autolock on leaves the
    // locked data key and the old KEK: opens locked, and the KEK is removed.
    let (mut store, _) = unlocked(dir.path());
    store.rotate_lock(&key, Lock::UnlockKey(&uk)).unwrap();
    fs::write(dir.path().join(KEK_FILE), &kek).unwrap();
    let l = locked(dir.path());
    assert!(!dir.path().join(KEK_FILE).exists());
    assert!(same_key(&l.unlock(&uk).unwrap().1, &key));
}

#[test]
fn write_atomic_replaces_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_atomic(&path, b"old contents").unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(mode(&path), 0o600);
    assert!(!dir.path().join("f.tmp").exists());
}
