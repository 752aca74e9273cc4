//! Pulls from a registry. oci-client speaks the protocol (auth, token
//! dance, manifests, blob streams); this module checks every byte itself:
//! manifests and blobs are hashed here and refused when they do not match
//! their digests, whatever the client thinks.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::try_join_all;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest,
};
use oci_client::{Client, Reference};
use oci_spec::image::{Arch, Os};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::reference::{self, is_insecure, repo_digest, tag_name};
use super::store::Record;
use super::{Image, ImageError, ImageStore, PullProgress, RegistryAuth};
use super::{config, digest_hex, hex, io_err, sha256_digest};

/// The manifest kinds asked for: Docker v2 schema 2 and OCI, single and
/// multi-platform.
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// Config media types of container images (not Helm charts, Wasm, ...).
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// An image config larger than this is not one.
const MAX_CONFIG: u64 = 16 << 20;

/// Progress is reported every this many bytes of a blob.
const PROGRESS_STEP: u64 = 1 << 20;

impl ImageStore {
    /// Pulls an image (again: a tag may have moved) and records it under
    /// the reference's normal form. Concurrent pulls of one reference run
    /// one after the other, and layers already here are not downloaded
    /// again, so the second finds everything in place.
    pub async fn pull(
        &self,
        reference: &str,
        auth: &RegistryAuth,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let r = reference::parse(reference)?;
        let _pulling = self.locks.lock(format!("pull:{}", r.whole())).await;
        self.pull_locked(&r, auth, progress).await
    }

    /// The image if it is here (for a tag: pulled before, even if the tag
    /// has moved since), else pulls it.
    pub async fn ensure(&self, reference: &str, auth: &RegistryAuth) -> Result<Image, ImageError> {
        if let Some(image) = self.get(reference) {
            return Ok(image);
        }
        let r = reference::parse(reference)?;
        let _pulling = self.locks.lock(format!("pull:{}", r.whole())).await;
        // Pulled by whoever held the lock before us?
        if let Some(image) = self.get(reference) {
            return Ok(image);
        }
        self.pull_locked(&r, auth, &|_| {}).await
    }

    /// The manifest digest a tag points at now (`sha256:<hex>`; of the
    /// index for multi-platform images), without downloading the image:
    /// what `--resolve-image` pins a service to.
    pub async fn resolve_digest(
        &self,
        reference: &str,
        auth: &RegistryAuth,
    ) -> Result<String, ImageError> {
        let r = reference::parse(reference)?;
        let digest = self
            .client(&r)?
            .fetch_manifest_digest(&r, &oci_auth(auth))
            .await
            .map_err(|e| registry_error(e, &r))?;
        digest_hex(&digest).ok_or_else(|| {
            ImageError::Unsupported(format!("{}: unsupported digest {digest:?}", r.whole()))
        })?;
        Ok(digest)
    }

    async fn pull_locked(
        &self,
        r: &Reference,
        auth: &RegistryAuth,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let name = r.whole();
        let client = self.client(r)?;
        let auth = oci_auth(auth);
        debug!(image = %name, "pulling");

        let (top, manifest) = self.manifest(&client, r, &auth).await?;
        progress(PullProgress::Resolved {
            reference: name.clone(),
            digest: top.clone(),
            layers: manifest.layers.len(),
        });
        if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
            return Err(ImageError::Unsupported(format!(
                "{name}: not a container image (config type {})",
                manifest.config.media_type
            )));
        }
        if let Some(layer) = manifest.layers.iter().find(|l| !is_tar(&l.media_type)) {
            return Err(ImageError::Unsupported(format!(
                "{name}: unsupported layer type {}",
                layer.media_type
            )));
        }
        let id = manifest.config.digest.clone();
        digest_hex(&id)
            .ok_or_else(|| ImageError::Unsupported(format!("{name}: config digest {id:?}")))?;

        // The config: skipped when the image is here already.
        let (config, diff_ids) = match self.record(&id) {
            Some(record) => (record.config, record.diff_ids),
            None => {
                let bytes = self.blob_bytes(&client, r, &manifest.config).await?;
                let parsed = config::parse(&bytes).map_err(|e| e.context(&name))?;
                (parsed.config, parsed.diff_ids)
            }
        };
        if diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Corrupt(format!(
                "{name}: the manifest has {} layers, the config {}",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }

        let _pinned = self.pin(&diff_ids);
        let layers = manifest.layers.iter().zip(&diff_ids);
        let sizes = try_join_all(
            layers.map(|(desc, diff_id)| self.pull_layer(&client, r, desc, diff_id, progress)),
        )
        .await?;

        let record = Record {
            id,
            config,
            diff_ids,
            layer_sizes: sizes,
        };
        let tags: Vec<String> = tag_name(r).into_iter().collect();
        let image = self.commit(record, &tags, &[repo_digest(r, &top)])?;
        progress(PullProgress::Done);
        debug!(image = %name, id = %image.id, "pulled");
        Ok(image)
    }

    /// The image manifest (picking this machine's platform from an index)
    /// and the digest of what the reference names.
    async fn manifest(
        &self,
        client: &Client,
        r: &Reference,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<(String, OciImageManifest), ImageError> {
        let name = r.whole();
        let (body, _) = client
            .pull_manifest_raw(r, auth, MANIFEST_TYPES)
            .await
            .map_err(|e| registry_error(e, r))?;
        let top = sha256_digest(&body);
        check_digest(&name, r.digest(), &top)?;
        let manifest = match parse_manifest(&name, &body)? {
            OciManifest::Image(manifest) => manifest,
            OciManifest::ImageIndex(index) => {
                let entry = pick_platform(&index.manifests).ok_or_else(|| {
                    ImageError::Unsupported(format!(
                        "{name}: no image for linux/{} in the index",
                        Arch::default()
                    ))
                })?;
                let one = r.clone_with_digest(entry.digest.clone());
                let (body, _) = client
                    .pull_manifest_raw(&one, auth, MANIFEST_TYPES)
                    .await
                    .map_err(|e| registry_error(e, r))?;
                check_digest(&name, Some(&entry.digest), &sha256_digest(&body))?;
                match parse_manifest(&name, &body)? {
                    OciManifest::Image(manifest) => manifest,
                    OciManifest::ImageIndex(_) => {
                        return Err(ImageError::Unsupported(format!("{name}: nested index")));
                    }
                }
            }
        };
        Ok((top, manifest))
    }

    /// One layer: found in the store, or downloaded and unpacked, by one
    /// caller at a time.
    async fn pull_layer(
        &self,
        client: &Client,
        r: &Reference,
        desc: &OciDescriptor,
        diff_id: &str,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<u64, ImageError> {
        let _unpacking = self.locks.lock(format!("layer:{diff_id}")).await;
        let done = |cached| PullProgress::LayerDone {
            digest: desc.digest.clone(),
            cached,
        };
        if let Some(size) = self.existing_layer(diff_id).await? {
            progress(done(true));
            return Ok(size);
        }
        let blob = self.tmp_path();
        let mut file = tokio::fs::File::create(blob.path())
            .await
            .map_err(|e| io_err(blob.path().display(), e))?;
        self.download(client, r, desc, &mut file, progress).await?;
        drop(file);
        let size = self
            .install_layer(blob, diff_id, Some(&desc.digest))
            .await
            .map_err(|e| e.context(&format!("{}: layer {}", r.whole(), desc.digest)))?;
        progress(done(false));
        Ok(size)
    }

    /// A small blob (the config) into memory, verified.
    async fn blob_bytes(
        &self,
        client: &Client,
        r: &Reference,
        desc: &OciDescriptor,
    ) -> Result<Vec<u8>, ImageError> {
        if u64::try_from(desc.size).unwrap_or(u64::MAX) > MAX_CONFIG {
            return Err(ImageError::Corrupt(format!(
                "{}: config too large",
                r.whole()
            )));
        }
        let mut bytes = Vec::new();
        self.download(client, r, desc, &mut bytes, &|_| {}).await?;
        Ok(bytes)
    }

    /// Streams a blob into `out` while hashing it; `DigestMismatch` when
    /// the bytes are not what the descriptor says (digest or size).
    async fn download(
        &self,
        client: &Client,
        r: &Reference,
        desc: &OciDescriptor,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<(), ImageError> {
        let name = r.whole();
        let expected_size = u64::try_from(desc.size).ok().filter(|s| *s > 0);
        let mut stream = client
            .pull_blob_stream(r, desc)
            .await
            .map_err(|e| registry_error(e, r))?;
        let total = expected_size.or(stream.content_length).unwrap_or(0);
        let (mut hasher, mut done, mut reported) = (Sha256::new(), 0u64, 0u64);
        let mismatch = |actual: String| ImageError::DigestMismatch {
            image: format!("{name}: blob {}", desc.digest),
            expected: desc.digest.clone(),
            actual,
        };
        while let Some(chunk) = stream.stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // The client's own check failed: ours decides below.
                Err(e) if is_digest_error(&e) => break,
                Err(e) => {
                    return Err(ImageError::Unreachable(format!(
                        "{name}: download of {} from {} failed: {}",
                        desc.digest,
                        r.registry(),
                        chain(&e)
                    )));
                }
            };
            done += chunk.len() as u64;
            if expected_size.is_some_and(|size| done > size) {
                return Err(mismatch(format!("more than {} bytes", desc.size)));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| io_err("writing a blob", e))?;
            if done - reported >= PROGRESS_STEP || done == total {
                reported = done;
                progress(PullProgress::Layer {
                    digest: desc.digest.clone(),
                    done,
                    total,
                });
            }
        }
        out.flush().await.map_err(|e| io_err("writing a blob", e))?;
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual != desc.digest || expected_size.is_some_and(|size| done != size) {
            return Err(mismatch(actual));
        }
        Ok(())
    }

    /// A client for one registry: plain HTTP when it is insecure.
    fn client(&self, r: &Reference) -> Result<Client, ImageError> {
        shoal_proto::tls::install_default_provider();
        let protocol = if is_insecure(r.registry(), &self.registries) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            // Platforms are picked here, from the raw index.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        Client::try_from(config).map_err(|e| ImageError::Io(format!("registry client: {e}")))
    }
}

fn oci_auth(auth: &RegistryAuth) -> oci_client::secrets::RegistryAuth {
    if auth.username.is_empty() {
        oci_client::secrets::RegistryAuth::Anonymous
    } else {
        oci_client::secrets::RegistryAuth::Basic(auth.username.clone(), auth.password.clone())
    }
}

fn check_digest(name: &str, expected: Option<&str>, actual: &str) -> Result<(), ImageError> {
    match expected {
        Some(expected) if expected != actual => Err(ImageError::DigestMismatch {
            image: format!("{name}: manifest"),
            expected: expected.into(),
            actual: actual.into(),
        }),
        _ => Ok(()),
    }
}

fn parse_manifest(name: &str, body: &[u8]) -> Result<OciManifest, ImageError> {
    serde_json::from_slice(body)
        .map_err(|e| ImageError::Unsupported(format!("{name}: unsupported manifest: {e}")))
}

/// This machine's platform, else linux/amd64.
pub(super) fn pick_platform(entries: &[ImageIndexEntry]) -> Option<&ImageIndexEntry> {
    [(Os::default(), Arch::default()), (Os::Linux, Arch::Amd64)]
        .into_iter()
        .find_map(|(os, arch)| {
            entries.iter().find(|e| {
                e.platform
                    .as_ref()
                    .is_some_and(|p| p.os == os && p.architecture == arch)
            })
        })
}

/// Tar layers, gzipped or not (the compression is sniffed when unpacking);
/// not zstd, not artifacts.
pub(super) fn is_tar(media_type: &str) -> bool {
    media_type.contains(".tar") && !media_type.contains("zstd")
}

fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some())
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = std::error::Error::source(source.expect("checked"));
    }
    text
}

/// What a registry answer means for the user, naming image and registry.
fn registry_error(err: OciDistributionError, r: &Reference) -> ImageError {
    use OciDistributionError as E;
    let (name, registry) = (r.whole(), r.registry());
    let denied = || {
        ImageError::Unauthorized(format!(
            "{name}: access denied by {registry} (missing or wrong credentials, or no such repository)"
        ))
    };
    let not_found = || ImageError::NotFound(format!("{name}: not found in {registry}"));
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => denied(),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<_> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                denied()
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found()
            } else {
                let messages: Vec<_> = envelope.errors.iter().map(|e| e.message.as_str()).collect();
                ImageError::Registry(format!("{name}: {registry}: {}", messages.join("; ")))
            }
        }
        E::ServerError { code, .. } => match code {
            404 => not_found(),
            401 | 403 => denied(),
            502..=504 => ImageError::Unreachable(format!(
                "{name}: registry {registry} is unavailable (HTTP {code})"
            )),
            _ => ImageError::Registry(format!("{name}: {registry} answered HTTP {code}")),
        },
        E::RequestError(e) => {
            ImageError::Unreachable(format!("{name}: cannot reach {registry}: {}", chain(&e)))
        }
        E::IoError(e) => {
            ImageError::Unreachable(format!("{name}: cannot reach {registry}: {}", chain(&e)))
        }
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            ImageError::DigestMismatch {
                image: format!("{name}: manifest"),
                expected,
                actual,
            }
        }
        E::UnsupportedSchemaVersionError(_) | E::UnsupportedMediaTypeError(_) => {
            ImageError::Unsupported(format!("{name}: {err}"))
        }
        other => ImageError::Registry(format!("{name}: {registry}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types() {
        for ok in [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ] {
            assert!(is_tar(ok), "{ok}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.wasm.content.layer.v1+wasm",
        ] {
            assert!(!is_tar(bad), "{bad}");
        }
    }

    #[test]
    fn picks_this_platform_then_amd64() {
        let entry = |arch: &str, digest: &str| -> ImageIndexEntry {
            serde_json::from_value(serde_json::json!({
                "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": digest, "size": 1,
                "platform": {"architecture": arch, "os": "linux"}
            }))
            .unwrap()
        };
        let this = Arch::default().to_string();
        let entries = [entry("s390x", "a"), entry(&this, "b"), entry("amd64", "c")];
        assert_eq!(pick_platform(&entries).unwrap().digest, "b");
        let entries = [entry("s390x", "a"), entry("amd64", "c")];
        let expect = if this == "s390x" { "a" } else { "c" };
        assert_eq!(pick_platform(&entries).unwrap().digest, expect);
        assert!(pick_platform(&[entry("riscv64", "x")]).is_none() || this == "riscv64");
    }
}
