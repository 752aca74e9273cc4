//! One cgroup per task, at `<root>/shoal/<group>/<task id>` (v2) or under
//! each v1 controller's hierarchy (`<root>/<controller>/shoal/...`). The
//! root is a parameter so unit tests can point it at a temp dir.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// CFS period used for CPU limits (Docker's).
pub const CPU_PERIOD_US: i64 = 100_000;

/// v1 controllers the engine uses, each its own hierarchy.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Where task cgroups go, and which hierarchy is mounted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    root: PathBuf,
    group: String,
    v2: bool,
}

/// Resource limits of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes; 0 = none.
    pub memory_bytes: i64,
    /// CPUs in units of 1e-9; 0 = none.
    pub nano_cpus: i64,
    /// Processes; 0 = none.
    pub pids: i64,
}

impl Cgroups {
    /// Task cgroups under `root` (usually /sys/fs/cgroup) in
    /// `shoal/<group>` (the node id). v2 when `root` is a cgroup2 mount.
    pub fn new(root: impl Into<PathBuf>, group: &str) -> Cgroups {
        let root = root.into();
        let v2 = root.join("cgroup.controllers").exists();
        Cgroups {
            root,
            group: group.to_string(),
            v2,
        }
    }

    /// Whether the unified (v2) hierarchy is used.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The directories of `task_id`'s cgroup, one per hierarchy.
    pub fn task_dirs(&self, task_id: &str) -> Vec<PathBuf> {
        let rel = Path::new("shoal").join(&self.group).join(task_id);
        if self.v2 {
            return vec![self.root.join(rel)];
        }
        V1_CONTROLLERS
            .iter()
            .map(|c| self.root.join(c))
            .filter(|h| h.is_dir())
            .map(|h| h.join(&rel))
            .collect()
    }

    /// The cgroup path of `task_id` below each hierarchy's root, as an OCI
    /// runtime spec's `cgroupsPath` gives it.
    pub fn path(&self, task_id: &str) -> String {
        format!("/shoal/{}/{task_id}", self.group)
    }

    /// Every directory of `task_id`'s cgroup that exists, in every v1
    /// hierarchy (a container runtime joins them all, not only the three
    /// the engine limits).
    pub fn existing_dirs(&self, task_id: &str) -> Vec<PathBuf> {
        if self.v2 {
            return self.task_dirs(task_id);
        }
        let rel = Path::new("shoal").join(&self.group).join(task_id);
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().join(&rel))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Creates `task_id`'s cgroup with `limits`.
    pub fn create(&self, task_id: &str, limits: Limits) -> io::Result<Vec<PathBuf>> {
        let dirs = self.task_dirs(task_id);
        if self.v2 {
            // Controllers must be enabled on every level above the task.
            let shoal = self.root.join("shoal");
            let node = shoal.join(&self.group);
            for (parent, child) in [(&self.root, &shoal), (&shoal, &node)] {
                std::fs::create_dir_all(child)?;
                enable_controllers(parent);
            }
            enable_controllers(&node);
        }
        for dir in &dirs {
            std::fs::create_dir_all(dir)?;
            self.write_limits(dir, limits)?;
        }
        Ok(dirs)
    }

    fn write_limits(&self, dir: &Path, limits: Limits) -> io::Result<()> {
        let name = dir
            .ancestors()
            .nth(3)
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let quota = (limits.nano_cpus > 0)
            .then(|| (limits.nano_cpus * CPU_PERIOD_US / 1_000_000_000).max(1000));
        if self.v2 {
            if limits.memory_bytes > 0 {
                std::fs::write(dir.join("memory.max"), limits.memory_bytes.to_string())?;
            }
            if let Some(q) = quota {
                std::fs::write(dir.join("cpu.max"), format!("{q} {CPU_PERIOD_US}"))?;
            }
            if limits.pids > 0 {
                std::fs::write(dir.join("pids.max"), limits.pids.to_string())?;
            }
            return Ok(());
        }
        match name {
            "memory" if limits.memory_bytes > 0 => std::fs::write(
                dir.join("memory.limit_in_bytes"),
                limits.memory_bytes.to_string(),
            ),
            "cpu" => match quota {
                Some(q) => {
                    std::fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                    std::fs::write(dir.join("cpu.cfs_quota_us"), q.to_string())
                }
                None => Ok(()),
            },
            "pids" if limits.pids > 0 => {
                std::fs::write(dir.join("pids.max"), limits.pids.to_string())
            }
            _ => Ok(()),
        }
    }

    /// The file counting OOM kills of the task's memory cgroup.
    pub fn oom_events(&self, task_id: &str) -> Option<PathBuf> {
        let dirs = self.task_dirs(task_id);
        if self.v2 {
            return dirs.first().map(|d| d.join("memory.events"));
        }
        dirs.into_iter()
            .find(|d| d.ancestors().nth(3).and_then(|p| p.file_name()) == Some("memory".as_ref()))
            .map(|d| d.join("memory.oom_control"))
    }
}

/// Enables the controllers `parent` offers for its children; failures are
/// logged, not fatal (a task without a limit beats no task).
fn enable_controllers(parent: &Path) {
    let offered = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = ["cpu", "memory", "pids"]
        .iter()
        .filter(|c| offered.split_whitespace().any(|o| o == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return;
    }
    if let Err(err) = std::fs::write(parent.join("cgroup.subtree_control"), wanted.join(" ")) {
        tracing::warn!(%err, dir = %parent.display(), "cannot enable cgroup controllers");
    }
}

/// The processes in a task's cgroups.
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        // Never 0 or ourselves: kill(0) would hit our own process group.
        .filter(|p| *p > 0 && *p != me)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// SIGKILLs everything in the cgroups until they are empty (or `timeout`).
/// Returns whether they are empty.
pub fn kill_all(dirs: &[PathBuf], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = pids(dirs);
        if left.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::warn!(?left, "processes survive SIGKILL in a task cgroup");
            return false;
        }
        for dir in dirs {
            // v2's one-shot kill also catches processes forking right now.
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes the task's cgroup directories (retrying while the kernel
/// finishes tearing down killed processes).
pub fn remove(dirs: &[PathBuf]) -> io::Result<()> {
    for dir in dirs {
        let mut tries = 0;
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // A regular dir (unit tests on a temp dir) holds files.
                Err(_) if !is_cgroupfs(dir) => {
                    std::fs::remove_dir_all(dir)?;
                    break;
                }
                Err(e) if tries >= 50 => return Err(e),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    Ok(())
}

fn is_cgroupfs(dir: &Path) -> bool {
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x63677270;
    nix::sys::statfs::statfs(dir)
        .map(|s| {
            let t = s.filesystem_type().0;
            t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
        })
        .unwrap_or(false)
}

/// Whether the kernel OOM-killed something in the cgroup (`oom_kill N`
/// in v2's memory.events and v1's memory.oom_control alike).
pub fn oom_killed(events: &Path) -> bool {
    std::fs::read_to_string(events)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
        })
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn v2_limits_and_controllers() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids io").unwrap();
        let cg = Cgroups::new(root.path(), "node1");
        assert!(cg.is_v2());
        let dirs = cg
            .create(
                "t1",
                Limits {
                    memory_bytes: 64 << 20,
                    nano_cpus: 500_000_000,
                    pids: 0,
                },
            )
            .unwrap();
        assert_eq!(dirs, vec![root.path().join("shoal/node1/t1")]);
        assert_eq!(read(dirs[0].join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(dirs[0].join("cpu.max")), "50000 100000");
        assert_eq!(
            read(root.path().join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert_eq!(cg.oom_events("t1"), Some(dirs[0].join("memory.events")));
        remove(&dirs).unwrap();
        assert!(!dirs[0].exists());
    }

    #[test]
    fn v1_limits_per_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "pids", "blkio"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        let cg = Cgroups::new(root.path(), "n");
        assert!(!cg.is_v2());
        let dirs = cg
            .create(
                "t",
                Limits {
                    memory_bytes: 1 << 20,
                    nano_cpus: 2_000_000_000,
                    pids: 0,
                },
            )
            .unwrap();
        assert_eq!(dirs.len(), 3);
        let mem = root.path().join("memory/shoal/n/t");
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "1048576");
        let cpu = root.path().join("cpu/shoal/n/t");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "200000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(cg.oom_events("t"), Some(mem.join("memory.oom_control")));
        // Junk and our own pid are never returned for killing.
        std::fs::write(
            mem.join("cgroup.procs"),
            format!("0\n{}\n", std::process::id()),
        )
        .unwrap();
        assert!(pids(&dirs).is_empty());
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(oom_killed(&mem.join("memory.oom_control")));
        remove(&dirs).unwrap();
    }

    #[test]
    fn no_limits_write_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "").unwrap();
        let cg = Cgroups::new(root.path(), "n");
        let dirs = cg.create("t", Limits::default()).unwrap();
        assert!(!dirs[0].join("memory.max").exists());
        assert!(!dirs[0].join("cpu.max").exists());
    }
}
