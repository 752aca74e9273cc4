//! A real image registry (Debian's `docker-registry`, the CNCF
//! distribution) inside a cluster host's namespace, holding the demo images
//! `deploy/images.sh` builds from busybox-static without any engine.
//!
//! The images are built once per test process into the target dir; each
//! registry gets its own storage and pushes them with `skopeo`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Cluster;

/// The registry's port.
pub const REGISTRY_PORT: u16 = 5000;

/// The daemons' flag that lets them pull from test registries over plain
/// HTTP (every host address of the underlay).
pub const INSECURE_UNDERLAY: &str = "--insecure-registry=198.18.0.0/15";

/// A registry process; killed when dropped.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `host:port`, as image names start.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The full name of a demo image in this registry: `image("web:1")`.
    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/shoal-demo/{name_tag}", self.addr)
    }

    /// The registry's storage on disk (tests corrupt blobs in it).
    pub fn storage(&self) -> &Path {
        &self.dir
    }
}

/// The demo images as OCI layouts, built once per test process.
pub fn demo_images() -> anyhow::Result<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("shoal-test-images-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(repo_root().join("deploy/images.sh"))
            .arg("build")
            .arg(&out)
            .status()
            .map_err(|e| format!("deploy/images.sh: {e}"))?;
        if !status.success() {
            return Err(format!("deploy/images.sh build failed: {status}"));
        }
        Ok(out)
    });
    match built {
        Ok(p) => Ok(p),
        Err(e) => bail!("{e}"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

impl Cluster {
    /// A registry on host `i`'s address, port 5000, with the demo images
    /// pushed.
    pub fn registry(&self, i: usize) -> anyhow::Result<Registry> {
        let images = demo_images()?;
        let dir = self.dir.join(format!("registry-{i}"));
        std::fs::create_dir_all(&dir)?;
        let addr = format!("{}:{REGISTRY_PORT}", self.addr(i));
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new("ip")
            .args(["netns", "exec", self.netns(i), "docker-registry", "serve"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log"))?)
            .spawn()
            .context("docker-registry (Debian package docker-registry)")?;
        let registry = Registry {
            child,
            addr: addr.clone(),
            dir: dir.join("data"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self
                .exec(
                    i,
                    "curl",
                    &["-sf", "-o", "/dev/null", &format!("http://{addr}/v2/")],
                )
                .success();
            if up {
                break;
            }
            if Instant::now() > deadline {
                bail!("the registry at {addr} did not answer in 20s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let pushed = Command::new("ip")
            .args(["netns", "exec", self.netns(i), "bash"])
            .arg(repo_root().join("deploy/images.sh"))
            .arg("push")
            .arg(images)
            .arg(&addr)
            .output()?;
        if !pushed.status.success() {
            bail!(
                "pushing the demo images to {addr} failed: {}",
                String::from_utf8_lossy(&pushed.stderr)
            );
        }
        Ok(registry)
    }
}
