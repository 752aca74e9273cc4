//! The image store tests' harness: the tools they need, a real
//! `docker-registry` per test, the demo images, overlay mounts.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_worker::image::{Image, ImageStore, PullProgress, RegistryAuth, RegistryConfig};
use tempfile::TempDir;

pub const TOOLS: &[&str] = &[
    "docker-registry",
    "umoci",
    "skopeo",
    "busybox",
    "perl",
    "tar",
];

pub fn need_tools() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for tool in TOOLS {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is missing: these tests need docker-registry, umoci, skopeo, \
             busybox-static, perl and tar installed"
        );
    }
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn images_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/images.sh")
}

/// The demo images as OCI layouts in `<dir>/oci`.
pub fn build_images(dir: &Path) {
    run(Command::new(images_sh()).arg("build").arg(dir));
}

/// A `docker-registry` on a free loopback port; killed (by PID) on drop.
pub struct Registry {
    pub child: Child,
    pub addr: String,
    pub storage: PathBuf,
    pub log: PathBuf,
    pub creds: Option<(String, String)>,
}

impl Registry {
    pub fn start(dir: &Path, creds: Option<(&str, &str)>) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, password)) = creds {
            // bcrypt, as the registry wants, from libcrypt through perl.
            let script = r#"my @c = ("a".."z", "A".."Z", 0..9, ".", "/");
                my $salt = join "", map { $c[rand @c] } 1..22;
                print crypt($ARGV[1], "\$2y\$05\$$salt")"#;
            let out = Command::new("perl")
                .args(["-e", script, user, password])
                .output()
                .unwrap();
            let hash = String::from_utf8(out.stdout).unwrap();
            assert!(
                hash.starts_with("$2y$05$"),
                "perl crypt() without bcrypt: {hash:?}"
            );
            fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        fs::write(dir.join("config.yml"), config).unwrap();
        let log = dir.join("registry.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("docker-registry");
        let mut registry = Registry {
            child,
            addr,
            storage,
            log,
            creds: creds.map(|(u, p)| (u.into(), p.into())),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(&registry.addr).is_err() {
            if let Some(status) = registry.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}): {}", registry.log_text());
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Pushes the demo images (see deploy/images.sh).
    pub fn push(&self, images: &Path) {
        let mut cmd = Command::new(images_sh());
        cmd.arg("push").arg(images).arg(&self.addr);
        if let Some((user, password)) = &self.creds {
            cmd.env("REGISTRY_CREDS", format!("{user}:{password}"));
        }
        run(&mut cmd);
    }

    /// Copies an image of the layout into this registry under another name.
    pub fn copy(&self, images: &Path, tag: &str, to: &str) {
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}/oci:{tag}", images.display()),
            &format!("docker://{}/{to}", self.addr),
        ]));
    }

    pub fn name(&self, image: &str) -> String {
        format!("{}/shoal-demo/{image}", self.addr)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many times a blob was downloaded (access log lines).
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest} ")))
            .count()
    }

    /// The registry's file for a blob.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Demo images pushed to a fresh registry, and a fresh store. Fields drop
/// in order: the store, the registry (killed), then the directory.
pub struct Fixture {
    pub store: Option<ImageStore>,
    pub registry: Registry,
    pub dir: TempDir,
}

impl Fixture {
    pub fn new(creds: Option<(&str, &str)>) -> Fixture {
        need_tools();
        let dir = tempfile::tempdir().unwrap();
        build_images(&dir.path().join("images"));
        let registry_dir = dir.path().join("registry");
        fs::create_dir(&registry_dir).unwrap();
        let registry = Registry::start(&registry_dir, creds);
        registry.push(&dir.path().join("images"));
        let store = ImageStore::open(dir.path().join("store"), RegistryConfig::default()).unwrap();
        Fixture {
            dir,
            registry,
            store: Some(store),
        }
    }

    pub fn store(&self) -> &ImageStore {
        self.store.as_ref().unwrap()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    pub fn reopen(&mut self) {
        self.store = None;
        self.store = Some(ImageStore::open(self.root(), RegistryConfig::default()).unwrap());
    }

    /// Nothing was written: no layers, no records, no names, no temp files.
    pub fn assert_empty(&self) {
        assert!(self.store().list().is_empty(), "{:?}", self.store().list());
        for dir in ["layers", "images", "tmp"] {
            let left: Vec<_> = fs::read_dir(self.root().join(dir)).unwrap().collect();
            assert!(left.is_empty(), "{dir}: {left:?}");
        }
        if let Ok(names) = fs::read_to_string(self.root().join("names.json")) {
            let names: serde_json::Value = serde_json::from_str(&names).unwrap();
            assert_eq!(names, serde_json::json!({"tags": {}, "digests": {}}));
        }
    }
}

pub fn anon() -> RegistryAuth {
    RegistryAuth::default()
}

/// Collects progress events.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<PullProgress>>);

impl Events {
    pub fn push(&self, p: PullProgress) {
        self.0.lock().unwrap().push(p);
    }

    pub fn layers_done(&self, cached: bool) -> usize {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| matches!(e, PullProgress::LayerDone { cached: c, .. } if *c == cached))
            .count()
    }
}

/// A read-only overlay of an image's layers, unmounted on drop.
pub struct Overlay(pub PathBuf);

impl Overlay {
    pub fn mount(image: &Image, at: &Path) -> Overlay {
        fs::create_dir_all(at).unwrap();
        let lower: Vec<_> = image
            .layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        nix::mount::mount(
            Some("overlay"),
            at,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(format!("lowerdir={}", lower.join(":")).as_str()),
        )
        .expect("overlay mount (root needed)");
        Overlay(at.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}
