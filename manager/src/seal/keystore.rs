//! The data key on disk, wrapped by a key-encryption key (KEK).
//!
//! Why it is shaped so (Docker's two modes):
//! - Not autolocked: the KEK is a random key in `<dir>/kek` (mode 0600)
//!   beside the wrapped data key in `<dir>/data-key`. The disk holds no
//!   plaintext cluster data, yet the node restarts unattended.
//! - Autolocked: the KEK comes from an unlock key the user holds
//!   (`SWMKEY-1-...`), and nothing on disk opens the data key.
//! - Either way the wrapping key is HKDF-SHA256(salt, secret): the unlock key
//!   is 256 random bits, so a slow password hash would add nothing.
//! - Files are replaced atomically (temp + fsync + rename + fsync dir), and
//!   the order of writes when switching modes leaves a store that opens
//!   after a kill -9 at any point.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{DataKey, KEY_LEN, OVERHEAD, SealError, random_key};

/// File name of the wrapped data key inside the key store directory.
pub const DATA_KEY_FILE: &str = "data-key";
/// File name of the key-encryption key (only when not autolocked).
pub const KEK_FILE: &str = "kek";

const DEK_MAGIC: &[u8; 12] = b"SHOAL-DEK-1\n";
const KEK_MAGIC: &[u8; 12] = b"SHOAL-KEK-1\n";
const MODE_KEK_FILE: u8 = b'K';
const MODE_UNLOCK_KEY: u8 = b'U';
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = DEK_MAGIC.len() + 1 + SALT_LEN;
const DEK_FILE_LEN: usize = HEADER_LEN + KEY_LEN + OVERHEAD;
const KEK_FILE_LEN: usize = KEK_MAGIC.len() + KEY_LEN;
const UNLOCK_PREFIX: &str = "SWMKEY-1-";

/// A user-held key that opens an autolocked store (`SWMKEY-1-<base64>`).
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey(Zeroizing<[u8; KEY_LEN]>);

impl UnlockKey {
    /// A fresh random unlock key.
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn generate() -> UnlockKey {
        UnlockKey(random_key())
    }
}

impl std::fmt::Display for UnlockKey {
    /// The Docker form the user keeps: `SWMKEY-1-` + unpadded base64.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b64 = Zeroizing::new(general_purpose::STANDARD_NO_PAD.encode(&self.0[..]));
        write!(f, "{UNLOCK_PREFIX}{}", b64.as_str())
    }
}

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(<redacted>)")
    }
}

impl FromStr for UnlockKey {
    type Err = SealError;

    fn from_str(s: &str) -> Result<UnlockKey, SealError> {
        let s = s.trim();
        let Some(b64) = s.strip_prefix(UNLOCK_PREFIX) else {
            return Err(SealError::BadUnlockKey(format!(
                "it must start with {UNLOCK_PREFIX} (as printed by `swarm init --autolock` or `swarm unlock-key`)"
            )));
        };
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let bytes = Zeroizing::new(engine.decode(b64).map_err(|_| {
            SealError::BadUnlockKey(format!(
                "the part after {UNLOCK_PREFIX} is not valid base64"
            ))
        })?);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadUnlockKey(format!(
                "it holds {} bytes, {KEY_LEN} expected (is it complete?)",
                bytes.len()
            )));
        }
        key.copy_from_slice(&bytes);
        Ok(UnlockKey(key))
    }
}

/// How the data key is locked on disk.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// Not autolocked: a KEK file beside the data key opens it.
    None,
    /// Autolocked: only this unlock key opens the data key.
    UnlockKey(&'a UnlockKey),
}

/// What [`KeyStore::open`] found.
#[derive(Debug)]
pub enum Opened {
    /// Not autolocked: the data key is ready.
    Unlocked(KeyStore, DataKey),
    /// Autolocked: call [`LockedStore::unlock`] with the user's key.
    Locked(LockedStore),
}

/// A key store directory holding `data-key` (and `kek` when not autolocked).
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    autolocked: bool,
    // Fingerprint of the data key, so rotate_lock can't wrap a wrong one.
    key_id: [u8; 32],
}

/// An autolocked key store waiting for its unlock key.
#[derive(Debug)]
pub struct LockedStore {
    dir: PathBuf,
    file: Vec<u8>,
}

impl KeyStore {
    /// Creates a key store in `dir` (created if missing) with a new random
    /// data key, locked as `lock` says. Refuses to overwrite an existing one.
    pub fn create(dir: &Path, lock: Lock<'_>) -> Result<(KeyStore, DataKey), SealError> {
        fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        let path = dir.join(DATA_KEY_FILE);
        if path.exists() {
            return Err(SealError::AlreadyExists { path });
        }
        let key = DataKey::generate();
        write_wrapped(dir, &key, lock)?;
        let store = KeyStore {
            dir: dir.to_path_buf(),
            autolocked: matches!(lock, Lock::UnlockKey(_)),
            key_id: key_id(&key),
        };
        Ok((store, key))
    }

    /// Whether `dir` holds a data key file (a store was created there).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DATA_KEY_FILE).exists()
    }

    /// Opens the key store in `dir`: unlocked if it is not autolocked,
    /// otherwise a [`LockedStore`] that needs the user's unlock key.
    pub fn open(dir: &Path) -> Result<Opened, SealError> {
        let path = dir.join(DATA_KEY_FILE);
        let file = read_file(&path, DEK_FILE_LEN)?;
        check_dek_file(&path, &file)?;
        match file[DEK_MAGIC.len()] {
            MODE_UNLOCK_KEY => {
                // A KEK left by a crash while switching autolock on opens
                // nothing any more; don't leave it lying around.
                let _ = remove_durably(&dir.join(KEK_FILE));
                Ok(Opened::Locked(LockedStore {
                    dir: dir.to_path_buf(),
                    file,
                }))
            }
            _ => {
                let kek_path = dir.join(KEK_FILE);
                let kek = read_kek(&kek_path)?;
                let key = unwrap_key(&file, &kek[..]).map_err(|_| SealError::Damaged {
                    path: path.clone(),
                    reason: format!(
                        "it does not authenticate with the key-encryption key in {}",
                        kek_path.display()
                    ),
                })?;
                let store = KeyStore {
                    dir: dir.to_path_buf(),
                    autolocked: false,
                    key_id: key_id(&key),
                };
                Ok(Opened::Unlocked(store, key))
            }
        }
    }

    /// Whether the data key is autolocked (needs the user's unlock key).
    pub fn is_autolocked(&self) -> bool {
        self.autolocked
    }

    /// The key store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-wraps the same data key under a new lock: turns autolock on or
    /// off, or changes the unlock key. The data key (and so everything it
    /// sealed) is unchanged. `key` must be this store's data key.
    pub fn rotate_lock(&mut self, key: &DataKey, lock: Lock<'_>) -> Result<(), SealError> {
        if key_id(key) != self.key_id {
            return Err(SealError::KeyMismatch {
                path: self.dir.join(DATA_KEY_FILE),
            });
        }
        write_wrapped(&self.dir, key, lock)?;
        self.autolocked = matches!(lock, Lock::UnlockKey(_));
        Ok(())
    }
}

impl LockedStore {
    /// Opens the data key with the user's unlock key. A wrong key gives
    /// [`SealError::WrongUnlockKey`]; the store stays usable for a retry.
    pub fn unlock(&self, unlock_key: &UnlockKey) -> Result<(KeyStore, DataKey), SealError> {
        let key =
            unwrap_key(&self.file, &unlock_key.0[..]).map_err(|_| SealError::WrongUnlockKey {
                path: self.dir.join(DATA_KEY_FILE),
            })?;
        let store = KeyStore {
            dir: self.dir.clone(),
            autolocked: true,
            key_id: key_id(&key),
        };
        Ok((store, key))
    }

    /// The key store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `<dir>/data-key` (and `<dir>/kek` or its removal) for `lock`, in
/// an order that survives a crash between any two steps:
/// - to unlocked: the KEK first (a locked data-key ignores it), then the
///   data key that needs it;
/// - to locked: the data key first, then the KEK goes.
fn write_wrapped(dir: &Path, key: &DataKey, lock: Lock<'_>) -> Result<(), SealError> {
    let kek_path = dir.join(KEK_FILE);
    match lock {
        Lock::None => {
            let kek = match read_kek(&kek_path) {
                Ok(kek) => kek,
                Err(_) => {
                    let kek = random_key();
                    let mut file = Zeroizing::new(Vec::with_capacity(KEK_FILE_LEN));
                    file.extend_from_slice(KEK_MAGIC);
                    file.extend_from_slice(&kek[..]);
                    write_atomic(&kek_path, &file)?;
                    kek
                }
            };
            let file = wrap_key(key, MODE_KEK_FILE, &kek[..]);
            write_atomic(&dir.join(DATA_KEY_FILE), &file)
        }
        Lock::UnlockKey(unlock) => {
            let file = wrap_key(key, MODE_UNLOCK_KEY, &unlock.0[..]);
            write_atomic(&dir.join(DATA_KEY_FILE), &file)?;
            remove_durably(&kek_path)
        }
    }
}

/// `magic || mode || salt || seal(data key)` under HKDF(salt, secret).
fn wrap_key(key: &DataKey, mode: u8, secret: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(DEK_FILE_LEN);
    file.extend_from_slice(DEK_MAGIC);
    file.push(mode);
    file.extend_from_slice(&random_key()[..SALT_LEN]);
    let kek = derive_kek(&file[DEK_MAGIC.len() + 1..HEADER_LEN], secret);
    let sealed = kek.seal(key.bytes(), &file[..HEADER_LEN]);
    file.extend_from_slice(&sealed);
    file
}

fn unwrap_key(file: &[u8], secret: &[u8]) -> Result<DataKey, SealError> {
    let kek = derive_kek(&file[DEK_MAGIC.len() + 1..HEADER_LEN], secret);
    let plain = Zeroizing::new(kek.open(&file[HEADER_LEN..], &file[..HEADER_LEN])?);
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if plain.len() != KEY_LEN {
        return Err(SealError::Authentication);
    }
    bytes.copy_from_slice(&plain);
    Ok(DataKey::from_bytes(bytes))
}

fn derive_kek(salt: &[u8], secret: &[u8]) -> DataKey {
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // expand only fails for outputs over 255 * 32 bytes.
    if Hkdf::<Sha256>::new(Some(salt), secret)
        .expand(b"shoal data-key wrap v1", &mut okm[..])
        .is_err()
    {
        unreachable!("HKDF-SHA256 output of 32 bytes is always valid");
    }
    DataKey::from_bytes(okm)
}

fn key_id(key: &DataKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"shoal data-key id v1");
    h.update(key.bytes());
    h.finalize().into()
}

fn check_dek_file(path: &Path, file: &[u8]) -> Result<(), SealError> {
    let damaged = |reason: &str| SealError::Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if !file.starts_with(DEK_MAGIC) {
        return Err(damaged("it does not start with the Shoal data key header"));
    }
    if file.len() != DEK_FILE_LEN {
        return Err(damaged(&format!(
            "it is {} bytes long, {DEK_FILE_LEN} expected (truncated?)",
            file.len()
        )));
    }
    match file[DEK_MAGIC.len()] {
        MODE_KEK_FILE | MODE_UNLOCK_KEY => Ok(()),
        _ => Err(damaged("unknown lock mode")),
    }
}

fn read_kek(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    let file = Zeroizing::new(read_file(path, KEK_FILE_LEN).map_err(|e| {
        match e {
            SealError::Missing { path } => SealError::Damaged {
                path,
                reason: "it is missing: the data key is not autolocked, so its \
                     key-encryption key must be beside it"
                    .to_string(),
            },
            e => e,
        }
    })?);
    if !file.starts_with(KEK_MAGIC) || file.len() != KEK_FILE_LEN {
        return Err(SealError::Damaged {
            path: path.to_path_buf(),
            reason: format!("bad header or length ({} bytes)", file.len()),
        });
    }
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    kek.copy_from_slice(&file[KEK_MAGIC.len()..]);
    Ok(kek)
}

/// Reads a small file; refuses one far larger than `expect` bytes.
fn read_file(path: &Path, expect: usize) -> Result<Vec<u8>, SealError> {
    match fs::metadata(path) {
        Ok(m) if m.len() > 4 * expect as u64 => {
            return Err(SealError::Damaged {
                path: path.to_path_buf(),
                reason: format!("it is {} bytes long, {expect} expected", m.len()),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SealError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err("cannot read", path, e)),
    }
    fs::read(path).map_err(|e| io_err("cannot read", path, e))
}

/// Replaces `path` with `contents` so that a crash at any moment leaves
/// either the old file or the new one: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SealError> {
    let dir = parent(path);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot remove", &tmp, e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("cannot create", &tmp, e))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err("cannot set permissions on", &tmp, e))?;
    f.write_all(contents)
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("cannot fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err("cannot rename into place", path, e))?;
    sync_dir(dir)
}

fn remove_durably(path: &Path) -> Result<(), SealError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot remove", path, e)),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SealError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync directory", dir, e))
}

fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> SealError {
    SealError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[path = "keystore_tests.rs"]
mod tests;
