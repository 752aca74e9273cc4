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
/// The port of the registry that wants credentials.
pub const PRIVATE_REGISTRY_PORT: u16 = 5001;

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
    /// A ready swarm of `n` embedded-engine hosts (host 0 the manager, the
    /// others workers) that pull over plain HTTP from the underlay, and a
    /// registry with the demo images on host 0.
    pub fn embedded_swarm(n: usize) -> anyhow::Result<(Cluster, Registry)> {
        Cluster::embedded_swarm_from(Cluster::builder(), n)
    }

    /// [`Cluster::embedded_swarm`] with more options (`docker_api()`).
    pub fn embedded_swarm_from(
        builder: crate::ClusterBuilder,
        n: usize,
    ) -> anyhow::Result<(Cluster, Registry)> {
        let cluster = builder
            .hosts(n)
            .engine("embedded")
            .daemon_arg(INSECURE_UNDERLAY)
            .start()?;
        cluster.init_swarm(0)?;
        for i in 1..n {
            cluster.join(i, 0, "worker")?;
        }
        cluster.wait_nodes_ready(0, n, Duration::from_secs(30))?;
        let registry = cluster.registry(0)?;
        Ok((cluster, registry))
    }

    /// The states and errors of `service`'s tasks as host 0's `service ps`
    /// shows them, one line each.
    pub fn task_errors(&self, service: &str) -> anyhow::Result<String> {
        self.shoal(
            0,
            &[
                "service",
                "ps",
                service,
                "--no-trunc",
                "--format",
                "{{.CurrentState}} {{.Error}}",
            ],
        )
        .ok()
    }

    /// A registry on host `i`'s address, port 5000, with the demo images
    /// pushed.
    pub fn registry(&self, i: usize) -> anyhow::Result<Registry> {
        self.start_registry(i, REGISTRY_PORT, None)
    }

    /// A registry on host `i`, port 5001, that serves only to `user` with
    /// `password` (htpasswd, bcrypt), with the demo images pushed.
    pub fn private_registry(
        &self,
        i: usize,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Registry> {
        self.start_registry(i, PRIVATE_REGISTRY_PORT, Some((user, password)))
    }

    fn start_registry(
        &self,
        i: usize,
        port: u16,
        creds: Option<(&str, &str)>,
    ) -> anyhow::Result<Registry> {
        let images = demo_images()?;
        let dir = self.dir.join(format!("registry-{i}-{port}"));
        std::fs::create_dir_all(&dir)?;
        let addr = format!("{}:{port}", self.addr(i));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((user, password)) = creds {
            std::fs::write(
                dir.join("htpasswd"),
                format!("{user}:{}\n", bcrypt(password)?),
            )?;
            config += &format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config_file = dir.join("config.yml");
        std::fs::write(&config_file, config)?;
        let child = Command::new("ip")
            .args(["netns", "exec", self.netns(i), "docker-registry", "serve"])
            .arg(&config_file)
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
            // 200, or 401 from a registry that wants credentials: it answers.
            let code = self
                .exec(
                    i,
                    "curl",
                    &[
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        &format!("http://{addr}/v2/"),
                    ],
                )
                .stdout;
            if code == "200" || code == "401" {
                break;
            }
            if Instant::now() > deadline {
                bail!("the registry at {addr} did not answer in 20s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut push = Command::new("ip");
        push.args(["netns", "exec", self.netns(i), "bash"])
            .arg(repo_root().join("deploy/images.sh"))
            .arg("push")
            .arg(images)
            .arg(&addr);
        if let Some((user, password)) = creds {
            push.env("REGISTRY_CREDS", format!("{user}:{password}"));
        }
        let pushed = push.output()?;
        if !pushed.status.success() {
            bail!(
                "pushing the demo images to {addr} failed: {}",
                String::from_utf8_lossy(&pushed.stderr)
            );
        }
        Ok(registry)
    }
}

/// A bcrypt hash of `password`, as the registry's htpasswd wants, from the
/// system's libcrypt through perl.
fn bcrypt(password: &str) -> anyhow::Result<String> {
    let script = r#"my @c = ("a".."z", "A".."Z", 0..9, ".", "/");
        my $salt = join "", map { $c[rand @c] } 1..22;
        print crypt($ARGV[0], "\$2y\$05\$$salt")"#;
    let out = Command::new("perl")
        .args(["-e", script, password])
        .output()?;
    let hash = String::from_utf8(out.stdout)?;
    anyhow::ensure!(
        hash.starts_with("$2y$05$"),
        "perl crypt() without bcrypt: {hash:?}"
    );
    Ok(hash)
}
