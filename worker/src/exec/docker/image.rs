//! Making sure a task's image is on the node: present locally, or pulled.
//! A task whose image can be neither is rejected, naming the image.

use std::sync::Arc;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;

use crate::exec::{ExecError, TaskRun};

/// Finds registry credentials for a task's image (the hook for
/// `--with-registry-auth`, whose credentials will travel with the task).
pub type RegistryAuth = Arc<dyn Fn(&TaskRun, &str) -> Option<DockerCredentials> + Send + Sync>;

/// Checks that `image` is present, pulling it when it is not.
pub async fn ensure(
    docker: &Docker,
    image: &str,
    credentials: Option<DockerCredentials>,
) -> Result<(), ExecError> {
    if image.is_empty() {
        return Err(ExecError::Rejected("the task's spec names no image".into()));
    }
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if super::is_not_found(&e) => {}
        Err(e) => return Err(ExecError::Failed(format!("inspect image {image}: {e}"))),
    }
    let (from_image, tag) = split_reference(image);
    tracing::info!(image, "image not on this node, pulling it");
    let options = CreateImageOptions {
        from_image: Some(from_image.to_string()),
        // Never empty: without a tag Docker pulls every tag of the repo.
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    docker
        .create_image(Some(options), None, credentials)
        .try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| {
            ExecError::Rejected(format!(
                "image {} is not on this node and could not be pulled: {}",
                display_name(image),
                super::docker_message(&e)
            ))
        })
}

/// `busybox` is shown as users know Docker to read it: `busybox:latest`.
fn display_name(image: &str) -> String {
    let (repo, tag) = split_reference(image);
    if tag.starts_with("sha256:") {
        format!("{repo}@{tag}")
    } else {
        format!("{repo}:{tag}")
    }
}

/// Splits a reference into repository and tag (or digest), defaulting the
/// tag to `latest`. A registry's port (`host:5000/x`) is not a tag.
pub fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_reference("shoal-test/busybox:1"),
            ("shoal-test/busybox", "1")
        );
        assert_eq!(split_reference("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(split_reference("reg:5000/a/b:2"), ("reg:5000/a/b", "2"));
        assert_eq!(split_reference("a@sha256:ab"), ("a", "sha256:ab"));
        assert_eq!(display_name("busybox"), "busybox:latest");
    }
}
