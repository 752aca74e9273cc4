//! Loads images from a tarball, for nodes that cannot reach a registry:
//! `docker save` output (`manifest.json`, newer Docker adds an OCI layout
//! around it) or an OCI image layout (`index.json` + `blobs/`), gzipped
//! or not. The tarball is extracted into `tmp/` and its layers go through
//! the same checked install as pulled ones.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OciImageIndex, OciImageManifest,
};
use serde::Deserialize;

use super::pull::{is_tar, pick_platform};
use super::reference;
use super::store::{Record, TmpPath};
use super::{Image, ImageError, ImageStore, config, digest_hex, io_err, sha256_digest};

/// Names in an OCI layout's index, most specific first.
const NAME_ANNOTATIONS: &[&str] = &[
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

/// One image found in the tarball.
struct Source {
    config: Vec<u8>,
    /// Blob paths in the extracted tarball, lowest first, with the digest
    /// the blob must have when the format says (OCI layouts).
    layers: Vec<(PathBuf, Option<String>)>,
    tags: Vec<String>,
}

/// An entry of `docker save`'s manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStore {
    /// Loads every image of a `docker save` or OCI-layout tarball, with the
    /// names it carries (none for an OCI layout whose entries are only
    /// tags: those images are reachable by id).
    pub async fn load(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        let what = tarball.display().to_string();
        let dir = self.tmp_path();
        let source = tarball.to_path_buf();
        let dir = tokio::task::spawn_blocking(move || -> Result<TmpPath, ImageError> {
            fs::create_dir(dir.path()).map_err(|e| io_err(dir.path().display(), e))?;
            extract(&source, dir.path())?;
            Ok(dir)
        })
        .await
        .map_err(|e| ImageError::Io(format!("extracting {what}: {e}")))?
        .map_err(|e| e.context(&what))?;

        let sources = if dir.path().join("manifest.json").is_file() {
            docker_sources(dir.path())
        } else if dir.path().join("index.json").is_file() {
            oci_sources(dir.path())
        } else {
            Err(ImageError::Corrupt(
                "neither a docker save nor an OCI layout tarball".into(),
            ))
        }
        .map_err(|e| e.context(&what))?;

        let mut images = Vec::new();
        for source in sources {
            images.push(self.import(source).await.map_err(|e| e.context(&what))?);
        }
        Ok(images)
    }

    async fn import(&self, source: Source) -> Result<Image, ImageError> {
        let parsed = config::parse(&source.config)?;
        if parsed.diff_ids.len() != source.layers.len() {
            return Err(ImageError::Corrupt(format!(
                "{} layers for {} diff_ids",
                source.layers.len(),
                parsed.diff_ids.len()
            )));
        }
        let _pinned = self.pin(&parsed.diff_ids);
        let mut sizes = Vec::new();
        for ((blob, digest), diff_id) in source.layers.into_iter().zip(&parsed.diff_ids) {
            let _unpacking = self.locks.lock(format!("layer:{diff_id}")).await;
            let size = match self.existing_layer(diff_id).await? {
                Some(size) => size,
                None => self
                    .install_layer(blob, diff_id, digest.as_deref())
                    .await
                    .map_err(|e| e.context(&format!("layer {diff_id}")))?,
            };
            sizes.push(size);
        }
        let record = Record {
            id: sha256_digest(&source.config),
            config: parsed.config,
            diff_ids: parsed.diff_ids,
            layer_sizes: sizes,
        };
        self.commit(record, &source.tags, &[])
    }
}

/// Extracts a (maybe gzipped) tarball; tar-rs keeps entries inside `dest`.
fn extract(tarball: &Path, dest: &Path) -> Result<(), ImageError> {
    let bad = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => io_err("reading", e),
        _ => ImageError::Corrupt(format!("not a readable tarball: {e}")),
    };
    let file = File::open(tarball).map_err(|e| io_err("opening", e))?;
    let mut reader = BufReader::new(file);
    let gzipped = reader.fill_buf().map_err(bad)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzipped {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    tar::Archive::new(reader).unpack(dest).map_err(bad)
}

fn docker_sources(dir: &Path) -> Result<Vec<Source>, ImageError> {
    let manifests: Vec<DockerManifest> = read_json(dir, "manifest.json")?;
    manifests
        .into_iter()
        .map(|m| {
            let tags = m
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| reference::normalize(t))
                .collect::<Result<_, _>>()?;
            let layers = m
                .layers
                .iter()
                .map(|l| Ok((inside(dir, l)?, None)))
                .collect::<Result<_, ImageError>>()?;
            let config = inside(dir, &m.config)?;
            let config = fs::read(&config).map_err(|e| io_err(&m.config, e))?;
            Ok(Source {
                config,
                layers,
                tags,
            })
        })
        .collect()
}

fn oci_sources(dir: &Path) -> Result<Vec<Source>, ImageError> {
    let index: OciImageIndex = read_json(dir, "index.json")?;
    let mut sources = Vec::new();
    for entry in &index.manifests {
        let mut digest = entry.digest.clone();
        if [OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE]
            .contains(&entry.media_type.as_str())
        {
            let nested: OciImageIndex = parse(&digest, &blob(dir, &digest)?)?;
            digest = pick_platform(&nested.manifests)
                .ok_or_else(|| {
                    ImageError::Unsupported(format!("{digest}: no image for this platform"))
                })?
                .digest
                .clone();
        }
        let manifest: OciImageManifest = parse(&digest, &blob(dir, &digest)?)?;
        if let Some(layer) = manifest.layers.iter().find(|l| !is_tar(&l.media_type)) {
            return Err(ImageError::Unsupported(format!(
                "{digest}: unsupported layer type {}",
                layer.media_type
            )));
        }
        let layers = manifest
            .layers
            .iter()
            .map(|l| Ok((blob_path(dir, &l.digest)?, Some(l.digest.clone()))))
            .collect::<Result<_, ImageError>>()?;
        let annotations = entry.annotations.clone().unwrap_or_default();
        // A bare tag ("1") names no repository: such images stay unnamed.
        let name = NAME_ANNOTATIONS
            .iter()
            .filter_map(|key| annotations.get(*key))
            .find(|name| name.contains('/') || name.contains(':'));
        let tags = name
            .map(|n| reference::normalize(n))
            .transpose()?
            .into_iter()
            .collect();
        sources.push(Source {
            config: blob(dir, &manifest.config.digest)?,
            layers,
            tags,
        });
    }
    Ok(sources)
}

/// A blob of the layout, verified against its digest.
fn blob(dir: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
    let path = blob_path(dir, digest)?;
    let bytes = fs::read(&path).map_err(|e| io_err(digest, e))?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            image: "blob".into(),
            expected: digest.into(),
            actual,
        });
    }
    Ok(bytes)
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = digest_hex(digest)
        .ok_or_else(|| ImageError::Unsupported(format!("unsupported digest {digest:?}")))?;
    inside(dir, &format!("blobs/sha256/{hex}"))
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, ImageError> {
    let bytes = fs::read(dir.join(name)).map_err(|e| io_err(name, e))?;
    parse(name, &bytes)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Corrupt(format!("{what}: {e}")))
}

/// A path the tarball names, refused unless it (symlinks resolved) stays
/// inside the extracted tarball.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let escapes = || ImageError::Corrupt(format!("{rel:?} points outside the tarball"));
    if Path::new(rel)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escapes());
    }
    let path = dir.join(rel);
    let real = path.canonicalize().map_err(|e| io_err(rel, e))?;
    let root = dir.canonicalize().map_err(|e| io_err(dir.display(), e))?;
    if !real.starts_with(root) {
        return Err(escapes());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_paths_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", tmp.path().join("out")).unwrap();
        std::os::unix::fs::symlink("a", tmp.path().join("in")).unwrap();
        assert!(inside(tmp.path(), "a").is_ok());
        assert!(inside(tmp.path(), "./in").is_ok());
        for bad in ["../a", "/etc/hostname", "out"] {
            assert!(
                matches!(inside(tmp.path(), bad), Err(ImageError::Corrupt(_))),
                "{bad}"
            );
        }
    }
}
