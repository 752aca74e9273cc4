//! Docker's `--init` (`ContainerSpec.init`): the task runs under a small
//! init as PID 1, bound read-only at [`INIT_PATH`], which forwards signals
//! to the task's program, reaps zombies and exits with the program's status
//! (128+N when killed by signal N), like tini. The init is `init/init.rs`,
//! static and without a libc (see `build.rs`), so it runs in any image.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where tasks see the init, as Docker binds it.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The init program (a static executable for the worker's target).
pub static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shoal-init"));

/// The default PATH of Docker's containers, when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Writes [`INIT`] to `dir/docker-init` (mode 0755) unless it is there
/// already, and returns its path, the source of the task's bind. Atomic (a
/// temporary file renamed over it), so running tasks keep their copy and
/// concurrent installs are safe.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join("docker-init");
    if let (Ok(meta), Ok(bytes)) = (fs::metadata(&path), fs::read(&path))
        && meta.permissions().mode() & 0o7777 == 0o755
        && bytes == INIT
    {
        return Ok(path);
    }
    fs::create_dir_all(dir)?;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".docker-init.{}.{seq}", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&tmp)?;
        file.write_all(INIT)?;
        // The umask may have cleared bits of the mode.
        file.set_permissions(fs::Permissions::from_mode(0o755))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// The task's argv under the init: `[INIT_PATH, "--", program, args...]`,
/// `argv[0]` looked up in `path_env` (the image's PATH, `/usr/bin:/bin`;
/// Docker's default when empty) inside `rootfs`, as the init execs an
/// absolute path. Symlinks are followed as the container would see them,
/// never out of `rootfs`; a symlink or an executable regular file counts as
/// found. An `argv[0]` with a `/` is kept as is; relative PATH entries are
/// skipped.
pub fn wrap(argv: &[String], rootfs: &Path, path_env: &str) -> Result<Vec<String>, String> {
    let (name, args) = argv
        .split_first()
        .ok_or_else(|| "no command specified".to_string())?;
    let program = if name.contains('/') {
        name.clone()
    } else {
        let path_env = if path_env.is_empty() {
            DEFAULT_PATH
        } else {
            path_env
        };
        path_env
            .split(':')
            .filter(|dir| dir.starts_with('/') && !name.is_empty())
            .find(|dir| {
                resolve_dir(rootfs, dir)
                    .and_then(|d| fs::symlink_metadata(d.join(name)).ok())
                    .is_some_and(|m| {
                        m.file_type().is_symlink()
                            || (m.is_file() && m.permissions().mode() & 0o111 != 0)
                    })
            })
            .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
            .ok_or_else(|| format!("executable file not found in $PATH: {name}"))?
    };
    let mut wrapped = vec![INIT_PATH.to_string(), "--".to_string(), program];
    wrapped.extend(args.iter().cloned());
    Ok(wrapped)
}

/// The host path of the container's directory `dir` (absolute) in `rootfs`,
/// its symlinks resolved with `rootfs` as `/`; `None` if it is not a
/// directory there.
fn resolve_dir(rootfs: &Path, dir: &str) -> Option<PathBuf> {
    /// Pushes `path`'s components on `todo`, the first on top.
    fn push(todo: &mut Vec<String>, path: &Path) {
        let parts = path.components().filter_map(|c| match c {
            Component::ParentDir => Some("..".to_string()),
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        });
        let parts: Vec<String> = parts.collect();
        todo.extend(parts.into_iter().rev());
    }
    let mut todo = Vec::new();
    push(&mut todo, Path::new(dir));
    let mut resolved = PathBuf::new(); // relative to rootfs, no symlinks
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            resolved.pop(); // `/..` is `/`
            continue;
        }
        let host = rootfs.join(&resolved).join(&part);
        let meta = fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None; // ELOOP
            }
            let target = fs::read_link(&host).ok()?;
            if target.is_absolute() {
                resolved = PathBuf::new();
            }
            push(&mut todo, &target);
        } else if meta.is_dir() {
            resolved.push(part);
        } else {
            return None;
        }
    }
    Some(rootfs.join(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn file(path: &Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn wrap_resolves_through_path_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        file(&r.join("usr/bin/tool"), 0o755);
        file(&r.join("bin/tool"), 0o755);
        file(&r.join("usr/local/bin/tool"), 0o644); // not executable
        fs::create_dir_all(r.join("bin")).unwrap();
        symlink("busybox", r.join("bin/sh")).unwrap(); // dangling is fine
        symlink("/usr/bin", r.join("sbin")).unwrap(); // absolute: in rootfs

        let wrapped = wrap(
            &argv(&["tool", "-x", "y"]),
            r,
            "/usr/local/bin:/usr/bin:/bin",
        );
        assert_eq!(
            wrapped.unwrap(),
            [INIT_PATH, "--", "/usr/bin/tool", "-x", "y"]
        );
        let wrapped = wrap(&argv(&["tool"]), r, "/bin/:/usr/bin").unwrap();
        assert_eq!(wrapped, [INIT_PATH, "--", "/bin/tool"]);
        let wrapped = wrap(&argv(&["sh", "-c", "exit 0"]), r, "/usr/bin:/bin").unwrap();
        assert_eq!(wrapped, [INIT_PATH, "--", "/bin/sh", "-c", "exit 0"]);
        let wrapped = wrap(&argv(&["tool"]), r, "relative:/sbin").unwrap();
        assert_eq!(wrapped, [INIT_PATH, "--", "/sbin/tool"]);
        // The host's /usr/bin/env is not the image's.
        let err = wrap(&argv(&["env"]), r, "/sbin:/usr/bin").unwrap_err();
        assert_eq!(err, "executable file not found in $PATH: env");
    }

    #[test]
    fn wrap_keeps_paths_and_reports_missing() {
        let root = tempfile::tempdir().unwrap();
        let wrapped = wrap(&argv(&["/app/run", "a"]), root.path(), "/bin").unwrap();
        assert_eq!(wrapped, [INIT_PATH, "--", "/app/run", "a"]);
        let err = wrap(&argv(&["nope"]), root.path(), "/usr/bin:/bin").unwrap_err();
        assert_eq!(err, "executable file not found in $PATH: nope");
        assert!(wrap(&[], root.path(), "/bin").is_err());
    }

    #[test]
    fn install_is_idempotent_and_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(&dir.path().join("state")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), INIT);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        fs::write(&path, b"stale").unwrap();
        assert_eq!(install(&dir.path().join("state")).unwrap(), path);
        assert_eq!(fs::read(&path).unwrap(), INIT);
        assert_eq!(fs::read_dir(dir.path().join("state")).unwrap().count(), 1);
        assert_eq!(&INIT[..4], b"\x7fELF");
        assert!(INIT.len() < 16 * 1024, "{} bytes", INIT.len());
    }

    /// Runs the installed init on `/bin/sh -c script`, retrying ETXTBSY (a
    /// concurrent test's fork may briefly hold our install's write fd).
    /// `subreaper`: orphans come to the init, as they do to a PID 1.
    fn spawn(script: &str, subreaper: bool) -> (tempfile::TempDir, Child) {
        let dir = tempfile::tempdir().unwrap();
        let init = install(dir.path()).unwrap();
        for _ in 0..50 {
            let mut cmd = Command::new(&init);
            cmd.args(["--", "/bin/sh", "-c", script])
                .stdout(Stdio::piped());
            if subreaper {
                // SAFETY: prctl is async-signal-safe; it survives execve.
                unsafe {
                    cmd.pre_exec(|| match libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) {
                        0 => Ok(()),
                        _ => Err(io::Error::last_os_error()),
                    });
                }
            }
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                child => return (dir, child.unwrap()),
            }
        }
        panic!("init stayed busy");
    }

    fn run(script: &str) -> Output {
        let (_dir, child) = spawn(script, false);
        child.wait_with_output().unwrap()
    }

    #[test]
    fn init_exits_with_the_programs_status() {
        assert_eq!(run("exit 7").status.code(), Some(7));
        assert_eq!(run("kill -TERM $$").status.code(), Some(143));
        let out = run("sleep 0.1 & sleep 0.1 & wait; echo ok");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, b"ok\n");
    }

    #[test]
    fn init_reports_a_failed_exec() {
        let dir = tempfile::tempdir().unwrap();
        let init = install(dir.path()).unwrap();
        let out = (0..50)
            .find_map(
                |_| match Command::new(&init).args(["--", "/nonexistent"]).output() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                    out => Some(out.unwrap()),
                },
            )
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "docker-init: exec /nonexistent failed: errno 2\n"
        );
    }

    #[test]
    fn init_forwards_signals() {
        let script = "trap 'exit 3' TERM; while true; do sleep 0.05; done";
        let (_dir, child) = spawn(script, false);
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: a signal to our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let status = child.wait_with_output().unwrap().status;
        assert_eq!(status.code(), Some(3), "{status:?}");
        assert_eq!(status.signal(), None);
    }

    /// Children of `pid` that are zombies, from /proc.
    fn zombies_of(pid: u32) -> Vec<u32> {
        let mut zombies = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 1 && fields[0] == "Z" && fields[1] == pid.to_string() {
                zombies.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
            }
        }
        zombies
    }

    #[test]
    fn init_reaps_orphans() {
        // The check sees zombies: a shell exec'd into `sleep` reaps none.
        let mut plain = Command::new("/bin/sh")
            .args(["-c", "sleep 0.05 & exec sleep 2"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(zombies_of(plain.id()).len(), 1);
        plain.kill().unwrap();
        plain.wait().unwrap();

        // The subshell's `sleep` is orphaned, comes to the init, and exits
        // while the program still runs: the init must reap it.
        let (_dir, child) = spawn("(sleep 0.1 &); sleep 0.8", true);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(zombies_of(child.id()), Vec::<u32>::new());
        let status = child.wait_with_output().unwrap().status;
        assert_eq!(status.code(), Some(0));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
