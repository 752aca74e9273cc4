//! `--resolve-image always|changed|never`: as Swarm does, a tag is pinned
//! to the digest its registry names at `service create`/`update` and
//! `stack deploy`, so every node runs the same image even if the tag moves.
//! The daemon the CLI talks to asks the registry (it knows which registries
//! are insecure); a daemon without an image store (docker, process and sim
//! engines) answers with nothing and the tag is deployed as written.

use std::time::Duration;

use shoal_proto::local::ImageResolveRequest;
use shoal_proto::local::local_client::LocalClient;
use shoal_proto::objects::ServiceSpec;

use crate::cmd::common::Api;

/// How long a registry may take to name a digest before the tag is
/// deployed as written.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

/// When to ask the registry for the image's digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolveImage {
    /// On every create, update and deploy (Docker's default).
    #[default]
    Always,
    /// Only when the image reference changes.
    Changed,
    /// Never: nodes resolve the tag themselves.
    Never,
}

/// The reference without its pinned digest: `web:1@sha256:..` → `web:1`.
pub fn unpinned(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// Pins `spec`'s image as `mode` says; `before` is the image of the spec
/// being replaced (update, redeploy). An image whose digest cannot be had
/// keeps its tag, with Docker's warning; one already pinned by its writer
/// (`name@sha256:..` in the spec as given) is left alone.
pub async fn pin(
    api: &Api,
    spec: &mut ServiceSpec,
    mode: ResolveImage,
    before: Option<&str>,
) -> anyhow::Result<()> {
    let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) else {
        return Ok(());
    };
    let same = before.is_some_and(|b| unpinned(b) == unpinned(&container.image));
    let keep_before = |c: &mut shoal_proto::objects::ContainerSpec| {
        if let Some(b) = before.filter(|_| same) {
            c.image = b.to_string();
        }
    };
    match mode {
        ResolveImage::Never => return Ok(()),
        ResolveImage::Changed if same => {
            keep_before(container);
            return Ok(());
        }
        _ => {}
    }
    if container.image.contains('@') && !same {
        return Ok(());
    }
    let name = unpinned(&container.image).to_string();
    let login = crate::registry_auth::login_for(&name)?.unwrap_or_default();
    let mut local = LocalClient::new(api.channel());
    let ask = local.image_resolve(ImageResolveRequest {
        reference: name.clone(),
        username: login.username,
        password: login.password,
    });
    match tokio::time::timeout(RESOLVE_TIMEOUT, ask).await {
        Ok(Ok(answer)) if !answer.get_ref().pinned.is_empty() => {
            container.image = answer.into_inner().pinned;
        }
        // This node does not resolve images: as written (or as before).
        Ok(Ok(_)) => keep_before(container),
        Ok(Err(_)) | Err(_) => {
            eprintln!(
                "image {name} could not be accessed on a registry to record\nits digest. Each node will access {name} independently,\npossibly leading to different nodes running different\nversions of the image.\n"
            );
            keep_before(container);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpinned_drops_the_digest_only() {
        assert_eq!(unpinned("r:5000/web:1@sha256:ab"), "r:5000/web:1");
        assert_eq!(unpinned("web"), "web");
    }
}
