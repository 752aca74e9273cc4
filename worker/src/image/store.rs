//! The store itself: image records and the name index (on disk, and in
//! memory behind one mutex), atomic writes, single-flight locks, layer
//! installation, remove and prune.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::locks::KeyedLocks;
use super::reference::{self, repo_digest};
use super::unpack::unpack_layer;
use super::{Image, ImageConfig, ImageError, RegistryConfig, digest_hex, io_err};

/// A node-local, content-addressed image store (see the module docs).
/// `Send + Sync`: share it behind an `Arc`. One store per root: a second
/// open of the same root (even in this process) fails until the first is
/// dropped.
pub struct ImageStore {
    pub(super) root: PathBuf,
    pub(super) registries: RegistryConfig,
    state: Mutex<State>,
    pub(super) locks: KeyedLocks,
    _lock: Flock<File>,
}

/// What is in memory: everything on disk but the layers themselves.
#[derive(Default)]
struct State {
    images: HashMap<String, Record>,
    names: Names,
    /// Layers (by diff_id) an unfinished pull or load relies on: remove and
    /// prune leave them alone.
    pins: HashMap<String, usize>,
}

/// `images/<hex>.json`. Immutable once written: names live in the index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: String,
    pub config: ImageConfig,
    /// Lowest first.
    pub diff_ids: Vec<String>,
    pub layer_sizes: Vec<u64>,
}

/// `names.json`: one file, so a tag moves from one image to another in
/// one atomic write.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
struct Names {
    /// `registry/repo:tag` -> image id.
    tags: BTreeMap<String, String>,
    /// `registry/repo@sha256:<manifest>` -> image id.
    digests: BTreeMap<String, String>,
}

impl ImageStore {
    /// Opens (or creates) the store at `root`: reads every record once,
    /// drops leftovers of interrupted work from `tmp/`.
    pub fn open(root: PathBuf, registries: RegistryConfig) -> Result<ImageStore, ImageError> {
        for dir in ["layers", "images", "tmp"] {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).map_err(|e| io_err(dir.display(), e))?;
        }
        let lock_path = root.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(lock_path.display(), e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ImageError::Io(format!("image store {} is already open", root.display()))
        })?;
        for leftover in read_dir(&root.join("tmp"))? {
            remove_path(&leftover).map_err(|e| io_err(leftover.display(), e))?;
        }

        let mut state = State::default();
        for path in read_dir(&root.join("images"))? {
            let bytes = fs::read(&path).map_err(|e| io_err(path.display(), e))?;
            let record = serde_json::from_slice::<Record>(&bytes).ok();
            let Some(record) = record.filter(|r| record_is_sane(&root, r)) else {
                warn!(path = %path.display(), "dropping an unreadable or incomplete image record");
                remove_path(&path).map_err(|e| io_err(path.display(), e))?;
                continue;
            };
            state.images.insert(record.id.clone(), record);
        }
        let names_path = root.join("names.json");
        if let Ok(bytes) = fs::read(&names_path) {
            state.names = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Corrupt(format!("{}: {e}", names_path.display())))?;
        }
        let store = ImageStore {
            root,
            registries,
            state: Mutex::new(State::default()),
            locks: KeyedLocks::default(),
            _lock: lock,
        };
        let mut names = state.names.clone();
        names.tags.retain(|_, id| state.images.contains_key(id));
        names.digests.retain(|_, id| state.images.contains_key(id));
        if names != state.names {
            store.write_names(&names)?;
            state.names = names;
        }
        debug!(images = state.images.len(), root = %store.root.display(), "image store open");
        *store.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(store)
    }

    /// The normal form of a reference: `busybox` ->
    /// `docker.io/library/busybox:latest`; `@sha256:` digests are kept.
    pub fn normalize(reference: &str) -> Result<String, ImageError> {
        reference::normalize(reference)
    }

    /// An image by name (`busybox`, `name:tag`), by `name@sha256:<manifest>`,
    /// by id (`sha256:<hex>`) or by a unique id prefix.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let state = self.state();
        let id = lookup(&state, reference)?;
        Some(self.image(&state, &state.images[&id]))
    }

    /// Every image, by id.
    pub fn list(&self) -> Vec<Image> {
        let state = self.state();
        let mut images: Vec<_> = state
            .images
            .values()
            .map(|r| self.image(&state, r))
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        images
    }

    /// Removes an image, or just the tag named when the image has other
    /// names (like `docker rmi name:tag`). `in_use` is asked with the store
    /// locked, so nothing can hand the image out meanwhile; it must not call
    /// back into the store.
    pub fn remove(
        &self,
        reference: &str,
        in_use: &dyn Fn(&Image) -> bool,
    ) -> Result<Image, ImageError> {
        let mut state = self.state();
        let id = lookup(&state, reference)
            .ok_or_else(|| ImageError::NotFound(format!("no such image: {reference}")))?;
        let image = self.image(&state, &state.images[&id]);
        let tag = reference::parse(reference)
            .ok()
            .filter(|r| r.digest().is_none())
            .map(|r| r.whole())
            .filter(|tag| state.names.tags.get(tag) == Some(&id));
        if let Some(tag) = tag.filter(|_| image.references.len() > 1) {
            let mut names = state.names.clone();
            names.tags.remove(&tag);
            self.write_names(&names)?;
            state.names = names;
            return Ok(image);
        }
        if in_use(&image) {
            return Err(ImageError::InUse(format!(
                "image {} is in use by a task",
                image.references.first().unwrap_or(&image.id)
            )));
        }
        let doomed = self.delete_images(&mut state, &[id])?;
        drop(state);
        remove_all(doomed);
        Ok(image)
    }

    /// Removes every image `in_use` says is not in use, then every layer no
    /// image has. `in_use` is asked with the store locked (see `remove`).
    pub fn prune(&self, in_use: &dyn Fn(&Image) -> bool) -> Result<Vec<Image>, ImageError> {
        let mut state = self.state();
        let mut images: Vec<Image> = state
            .images
            .values()
            .map(|r| self.image(&state, r))
            .filter(|image| !in_use(image))
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        let mut doomed = self.delete_images(&mut state, &ids)?;
        // Layers left by a crash between unpacking and recording.
        for dir in read_dir(&self.root.join("layers"))? {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let diff_id = format!("sha256:{name}");
            if !used_or_pinned(&state, &diff_id) {
                doomed.push(self.move_to_tmp(&dir)?);
            }
        }
        drop(state);
        remove_all(doomed);
        Ok(images)
    }

    /// The record of an image id, if stored.
    pub(super) fn record(&self, id: &str) -> Option<Record> {
        self.state().images.get(id).cloned()
    }

    /// Records an image and points `tags` and `digests` at it; the last
    /// step of a pull or load.
    pub(super) fn commit(
        &self,
        record: Record,
        tags: &[String],
        digests: &[String],
    ) -> Result<Image, ImageError> {
        let mut state = self.state();
        if !state.images.contains_key(&record.id) {
            let hex = digest_hex(&record.id).expect("ids are checked digests");
            let json = serde_json::to_vec_pretty(&record).expect("records serialize");
            self.write_atomic(&self.root.join("images").join(format!("{hex}.json")), &json)?;
        }
        let mut names = state.names.clone();
        for tag in tags {
            names.tags.insert(tag.clone(), record.id.clone());
        }
        for digest in digests {
            names.digests.insert(digest.clone(), record.id.clone());
        }
        if names != state.names {
            self.write_names(&names)?;
            state.names = names;
        }
        let id = record.id.clone();
        state.images.entry(id.clone()).or_insert(record);
        Ok(self.image(&state, &state.images[&id]))
    }

    /// Keeps remove and prune away from these layers until the pin drops.
    pub(super) fn pin(&self, diff_ids: &[String]) -> Pin<'_> {
        let mut state = self.state();
        for id in diff_ids {
            *state.pins.entry(id.clone()).or_default() += 1;
        }
        Pin {
            store: self,
            diff_ids: diff_ids.to_vec(),
        }
    }

    /// `layers/<hex>` of a diff_id.
    pub(super) fn layer_path(&self, diff_id: &str) -> PathBuf {
        let hex = digest_hex(diff_id).expect("diff_ids are checked digests");
        self.root.join("layers").join(hex)
    }

    /// The size of a layer already in the store, `None` if it is not.
    /// Call with the layer's lock held.
    pub(super) async fn existing_layer(&self, diff_id: &str) -> Result<Option<u64>, ImageError> {
        let path = self.layer_path(diff_id);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let known = self.state().images.values().find_map(|r| {
            let i = r.diff_ids.iter().position(|d| d == diff_id)?;
            r.layer_sizes.get(i).copied()
        });
        match known {
            Some(size) => Ok(Some(size)),
            // Unpacked before a crash, never recorded: measure it.
            None => tokio::task::spawn_blocking(move || du(&path))
                .await
                .map_err(|e| ImageError::Io(format!("measuring a layer: {e}")))?
                .map(Some)
                .map_err(|e| ImageError::Io(format!("measuring a layer: {e}"))),
        }
    }

    /// Unpacks a blob into `layers/<diff_id>`: into `tmp/` first, checked
    /// against both digests, synced, then renamed into place. Runs to the
    /// end on a blocking thread even if the caller goes away, so it never
    /// leaves half a layer behind. Call with the layer's lock held.
    pub(super) async fn install_layer(
        &self,
        blob: impl AsRef<Path> + Send + 'static,
        diff_id: &str,
        blob_digest: Option<&str>,
    ) -> Result<u64, ImageError> {
        let tmp = self.tmp_path();
        fs::create_dir(tmp.path()).map_err(|e| io_err(tmp.path().display(), e))?;
        let dest = self.layer_path(diff_id);
        let (diff_id, blob_digest) = (diff_id.to_string(), blob_digest.map(str::to_string));
        tokio::task::spawn_blocking(move || {
            let unpacked = unpack_layer(blob.as_ref(), tmp.path())?;
            for (what, expected, actual) in [
                ("blob", blob_digest.as_deref(), &unpacked.blob_digest),
                (
                    "uncompressed layer (diff_id)",
                    Some(diff_id.as_str()),
                    &unpacked.diff_id,
                ),
            ] {
                if let Some(expected) = expected.filter(|e| e != actual) {
                    return Err(ImageError::DigestMismatch {
                        image: what.into(),
                        expected: expected.into(),
                        actual: actual.clone(),
                    });
                }
            }
            let dir = File::open(tmp.path()).map_err(|e| io_err(tmp.path().display(), e))?;
            nix::unistd::syncfs(&dir).map_err(|e| io_err("syncing a layer", e.into()))?;
            if fs::symlink_metadata(&dest).is_err() {
                fs::rename(tmp.path(), &dest).map_err(|e| io_err(dest.display(), e))?;
                tmp.keep();
            }
            Ok(unpacked.size)
        })
        .await
        .map_err(|e| ImageError::Io(format!("unpacking a layer: {e}")))?
    }

    /// A fresh name in `tmp/`, removed (file or tree) when dropped.
    pub(super) fn tmp_path(&self) -> TmpPath {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TmpPath(Some(self.root.join("tmp").join(name)))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn image(&self, state: &State, record: &Record) -> Image {
        let named = |map: &BTreeMap<String, String>| {
            map.iter()
                .filter(|(_, id)| **id == record.id)
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>()
        };
        Image {
            id: record.id.clone(),
            references: named(&state.names.tags),
            repo_digest: named(&state.names.digests).into_iter().next(),
            config: record.config.clone(),
            layers: record.diff_ids.iter().map(|d| self.layer_path(d)).collect(),
            size: record.layer_sizes.iter().sum(),
        }
    }

    /// Drops images from the index, then their records, then moves their
    /// no longer used layers to `tmp/`; returns those for the caller to
    /// delete once the lock is released. That order means a crash leaves
    /// only unnamed records or orphan layers, which prune finds.
    fn delete_images(&self, state: &mut State, ids: &[String]) -> Result<Vec<PathBuf>, ImageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = state.names.clone();
        names.tags.retain(|_, id| !ids.contains(id));
        names.digests.retain(|_, id| !ids.contains(id));
        if names != state.names {
            self.write_names(&names)?;
            state.names = names;
        }
        let mut layers = Vec::new();
        for id in ids {
            let hex = digest_hex(id).expect("ids are checked digests");
            let path = self.root.join("images").join(format!("{hex}.json"));
            remove_path(&path).map_err(|e| io_err(path.display(), e))?;
            if let Some(record) = state.images.remove(id) {
                layers.extend(record.diff_ids);
            }
        }
        layers.sort();
        layers.dedup();
        let mut doomed = Vec::new();
        for diff_id in layers.iter().filter(|d| !used_or_pinned(state, d)) {
            let path = self.layer_path(diff_id);
            if fs::symlink_metadata(&path).is_ok() {
                doomed.push(self.move_to_tmp(&path)?);
            }
        }
        Ok(doomed)
    }

    fn move_to_tmp(&self, path: &Path) -> Result<PathBuf, ImageError> {
        let tmp = self.tmp_path();
        fs::rename(path, tmp.path()).map_err(|e| io_err(path.display(), e))?;
        Ok(tmp.keep())
    }

    fn write_names(&self, names: &Names) -> Result<(), ImageError> {
        let json = serde_json::to_vec_pretty(names).expect("names serialize");
        self.write_atomic(&self.root.join("names.json"), &json)
    }

    /// Write to `tmp/`, fsync, rename over `path`, fsync the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        let tmp = self.tmp_path();
        let write = || -> io::Result<()> {
            let mut file = File::create(tmp.path())?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(tmp.path(), path)?;
            File::open(path.parent().unwrap_or(Path::new("/")))?.sync_all()
        };
        write().map_err(|e| io_err(path.display(), e))?;
        tmp.keep();
        Ok(())
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .field("registries", &self.registries)
            .field("images", &self.state().images.len())
            .finish()
    }
}

/// Releases layers pinned by [`ImageStore::pin`].
pub(super) struct Pin<'a> {
    store: &'a ImageStore,
    diff_ids: Vec<String>,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut state = self.store.state();
        for id in &self.diff_ids {
            if let Some(n) = state.pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    state.pins.remove(id);
                }
            }
        }
    }
}

/// A path in `tmp/` that is removed when dropped, unless kept.
pub(super) struct TmpPath(Option<PathBuf>);

impl TmpPath {
    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().expect("not kept yet")
    }

    /// Keeps the path (it was renamed into place, or is the caller's now).
    pub(super) fn keep(mut self) -> PathBuf {
        self.0.take().expect("not kept yet")
    }
}

impl AsRef<Path> for TmpPath {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Drop for TmpPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = remove_path(&path)
        {
            warn!(path = %path.display(), error = %e, "cannot remove a temporary path");
        }
    }
}

/// Resolves a reference to an image id (see [`ImageStore::get`]).
fn lookup(state: &State, reference: &str) -> Option<String> {
    let reference = reference.trim();
    if let Some(hex) = reference.strip_prefix("sha256:") {
        return by_id_prefix(state, hex);
    }
    if let Ok(parsed) = reference::parse(reference) {
        let found = match parsed.digest() {
            Some(digest) => state.names.digests.get(&repo_digest(&parsed, digest)),
            None => state.names.tags.get(&parsed.whole()),
        };
        if let Some(id) = found {
            return Some(id.clone());
        }
    }
    by_id_prefix(state, reference)
}

fn by_id_prefix(state: &State, prefix: &str) -> Option<String> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut found = state
        .images
        .keys()
        .filter(|id| id["sha256:".len()..].starts_with(prefix));
    match (found.next(), found.next()) {
        (Some(id), None) => Some(id.clone()),
        _ => None, // unknown or ambiguous
    }
}

fn used_or_pinned(state: &State, diff_id: &str) -> bool {
    state.pins.contains_key(diff_id)
        || state
            .images
            .values()
            .any(|r| r.diff_ids.iter().any(|d| d == diff_id))
}

/// A record read at open is usable: its id and layers are digests and
/// every layer is unpacked.
fn record_is_sane(root: &Path, record: &Record) -> bool {
    digest_hex(&record.id).is_some()
        && record.diff_ids.len() == record.layer_sizes.len()
        && record
            .diff_ids
            .iter()
            .all(|d| digest_hex(d).is_some_and(|hex| root.join("layers").join(hex).is_dir()))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let entries = fs::read_dir(dir).map_err(|e| io_err(dir.display(), e))?;
    entries
        .map(|e| e.map(|e| e.path()).map_err(|e| io_err(dir.display(), e)))
        .collect()
}

fn remove_path(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Deletes what `delete_images` moved to `tmp/` (a crash meanwhile leaves
/// it to the next open).
fn remove_all(paths: Vec<PathBuf>) {
    for path in paths {
        if let Err(e) = remove_path(&path) {
            warn!(path = %path.display(), error = %e, "cannot remove a deleted layer");
        }
    }
}

/// Bytes of regular files under a directory.
fn du(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += du(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
