//! The per-task shim, a hidden subcommand of the `shoal` binary (like
//! containerd-shim or conmon): `shoal __task-shim <task dir>`.
//!
//! The engine spawns it; it forks once more and the first process exits,
//! so the shim is re-parented to init, in its own session: killing the
//! daemon (even with -9) leaves it and the task running. The shim then
//!
//! 1. unshares a pid namespace and forks the task's main process, which is
//!    PID 1 there (as in Docker without `--init`: no extra process to
//!    explain, signals go straight to the program, and when it exits the
//!    kernel kills everything left in the namespace, so nothing leaks);
//! 2. the child joins the task's cgroup, its network namespace, new
//!    mount/uts/ipc namespaces, binds the secrets, sets the host name and
//!    user, and execs the program;
//! 3. the shim writes `pid.json`, tells the engine `ok` (or `error: ..`)
//!    on its stdout, copies the task's stdout/stderr into the log, reaps
//!    it and writes `exit.json` atomically.
//!
//! `shoal __task-exec <task dir> <cmd>...` runs a command inside a running
//! task's namespaces and cgroup (health checks).
//!
//! Both run single-threaded (no runtime is started before them), which is
//! what makes fork and setns(CLONE_NEWNS) safe here.

use std::ffi::{CString, OsString};
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, pipe2};

use super::cgroup::oom_killed;
use super::config::{
    ExitFile, PidFile, TaskConfig, TaskDir, env_value, proc_start_time, read_json, resolve_program,
    write_json,
};
use super::logs::LogWriter;
use super::namespaces::{bind_read_only, enter_all, enter_netns, private_mounts_and_proc};
use crate::exec::LogSource;
use crate::exec::oci::container::{self, ContainerDirs};

/// argv[1] that makes `shoal` run a task shim.
pub const SHIM_ARG: &str = "__task-shim";
/// argv[1] that makes `shoal` run a command inside a task.
pub const EXEC_ARG: &str = "__task-exec";

/// Runs the hidden subcommands; `None` when argv[1] is not one of them.
/// Call first thing in `main`, before any runtime or thread starts.
pub fn hidden_main() -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let word = args.get(1)?.to_str()?;
    let rest = &args[2..];
    match word {
        SHIM_ARG => Some(shim(rest)),
        EXEC_ARG => Some(exec(rest)),
        _ => None,
    }
}

/// Tells the engine how the start went, then stops talking on stdout.
fn report(result: Result<(), String>) {
    let mut out = io::stdout();
    let _ = match result {
        Ok(()) => writeln!(out, "ok"),
        Err(e) => writeln!(out, "error: {}", e.replace('\n', " ")),
    };
    let _ = out.flush();
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

fn shim(args: &[OsString]) -> i32 {
    let Some(dir) = args.first().map(PathBuf::from) else {
        report(Err("usage: __task-shim <task dir>".into()));
        return 2;
    };
    // SAFETY: single-threaded here (see the module docs).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report(Err(format!("cannot fork the shim: {e}")));
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    let dir = TaskDir(dir);
    if let Ok(log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.shim_log())
    {
        let _ = nix::unistd::dup2_stderr(log.as_fd());
    }
    if let Ok(null) = OpenOptions::new().read(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null.as_fd());
    }
    // The container runtime explains its failures through tracing: into
    // shim.log with the shim's own errors. Its notes on syscalls this
    // kernel lacks are noise, and its container processes inherit the
    // subscriber with the task's stderr: errors only.
    shoal_proto::telemetry::init_errors_only();
    match supervise(&dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shim: {e}");
            1
        }
    }
}

/// The task's program, ready for execve (built before fork).
struct Program {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::other(format!("{s:?} contains a NUL byte")))
}

impl Program {
    fn new(path: &Path, argv: &[String], env: &[String]) -> io::Result<Program> {
        Ok(Program {
            path: cstr(&path.to_string_lossy())?,
            argv: argv.iter().map(|a| cstr(a)).collect::<io::Result<_>>()?,
            env: env.iter().map(|e| cstr(e)).collect::<io::Result<_>>()?,
        })
    }
}

fn supervise(dir: &TaskDir) -> io::Result<()> {
    let cfg: TaskConfig = match read_json(&dir.config()) {
        Ok(Some(c)) => c,
        Ok(None) => return fail("the task is not prepared (no config.json)"),
        Err(e) => return fail(&format!("cannot read config.json: {e}")),
    };
    let mut logs = LogWriter::open(dir.log(), cfg.log)?;
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
    let child = if cfg.image.is_some() {
        let dirs = ContainerDirs::new(dir.path());
        match container::create_and_start(&dirs, &cfg.task_id, out_w, err_w) {
            Ok(pid) => pid,
            Err(e) => return fail(&e),
        }
    } else {
        match start_host_command(dir, &cfg, out_w, err_w) {
            Ok(pid) => pid,
            Err(e) => return fail(&e),
        }
    };
    let start_time = proc_start_time(child.as_raw()).map_or(0, |(t, _)| t);
    write_json(
        &dir.pid(),
        &PidFile {
            shim_pid: std::process::id() as i32,
            pid: child.as_raw(),
            start_time,
        },
    )?;
    report(Ok(()));
    pump(&mut logs, out_r, err_r);
    let exit = reap(child, cfg.oom_events.as_deref());
    let _ = logs.flush();
    write_json(&dir.exit(), &exit)
}

/// Forks the host command of a process-engine task as PID 1 of a new pid
/// namespace; returns it once it has exec'd (or why it could not).
fn start_host_command(
    dir: &TaskDir,
    cfg: &TaskConfig,
    out_w: OwnedFd,
    err_w: OwnedFd,
) -> Result<Pid, String> {
    let program = Program::new(&cfg.program, &cfg.argv, &cfg.env).map_err(|e| e.to_string())?;
    let (fail_r, fail_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // Our next child is PID 1 of a new pid namespace; we stay outside.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        return Err(format!("cannot create a pid namespace: {e}"));
    }
    // SAFETY: single-threaded; the child only makes syscalls and execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => child,
        Ok(ForkResult::Child) => {
            let err = start_task(dir, cfg, &program, out_w, err_w);
            let _ = nix::unistd::write(&fail_w, err.to_string().as_bytes());
            // SAFETY: leave at once, running no destructors of the shim.
            unsafe { libc::_exit(127) }
        }
        Err(e) => return Err(format!("cannot fork the task: {e}")),
    };
    drop((out_w, err_w, fail_w));
    let why = read_all(&fail_r);
    if !why.is_empty() {
        let _ = waitpid(child, None);
        return Err(String::from_utf8_lossy(&why).into_owned());
    }
    Ok(child)
}

fn fail(msg: &str) -> io::Result<()> {
    report(Err(msg.to_string()));
    Err(io::Error::other(msg.to_string()))
}

fn read_all(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(_) => return out,
        }
    }
}

/// Copies the task's output into the log until both pipes close (when
/// PID 1 exits the kernel kills the rest of its namespace, so they do).
fn pump(logs: &mut LogWriter, out: OwnedFd, err: OwnedFd) {
    let mut open: Vec<(OwnedFd, LogSource)> =
        vec![(out, LogSource::Stdout), (err, LogSource::Stderr)];
    let mut buf = vec![0u8; 64 << 10];
    while !open.is_empty() {
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("shim: poll: {e}");
                return;
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        let mut closed = Vec::new();
        for (i, (fd, source)) in open.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => {
                    if let Err(e) = logs.write(*source, &buf[..n]) {
                        eprintln!("shim: cannot write the task log: {e}");
                    }
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            open.remove(i);
        }
    }
}

/// Waits for the main process and says how it ended.
fn reap(child: Pid, oom_events: Option<&Path>) -> ExitFile {
    let status = loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    let oom = oom_events.is_some_and(oom_killed);
    let (code, mut message) = match status {
        Ok(WaitStatus::Exited(_, code)) => (code, format!("exited with code {code}")),
        Ok(WaitStatus::Signaled(_, sig, _)) => {
            (128 + sig as i32, format!("killed by {}", sig.as_str()))
        }
        Ok(other) => (255, format!("unexpected wait status {other:?}")),
        Err(e) => (255, format!("cannot wait for the task: {e}")),
    };
    if oom {
        message = "OOM killed".into();
    }
    ExitFile { code, message }
}

/// In the forked child: enter the sandbox and exec. Returns only on error.
fn start_task(
    dir: &TaskDir,
    cfg: &TaskConfig,
    program: &Program,
    out: OwnedFd,
    err: OwnedFd,
) -> io::Error {
    let step = |what: &str, e: io::Error| io::Error::other(format!("{what}: {e}"));
    if let Err(e) = reset_signals() {
        return step("cannot reset signals", e);
    }
    for procs in &cfg.cgroup_procs {
        // "0" is the writing process itself, in every cgroup version.
        if let Err(e) = std::fs::write(procs, "0") {
            return step(&format!("cannot join the cgroup {}", procs.display()), e);
        }
    }
    if let Err(e) = enter_netns(&dir.netns()) {
        return step("cannot enter the task's network namespace", e);
    }
    let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if let Err(e) = unshare(flags) {
        return step("cannot create mount/uts/ipc namespaces", e.into());
    }
    if let Err(e) = private_mounts_and_proc() {
        return step("cannot set up the task's mounts", e);
    }
    for b in &cfg.binds {
        if let Err(e) = bind_read_only(&b.source, &b.target) {
            return step(&format!("cannot mount {}", b.target.display()), e);
        }
    }
    if let Err(e) = nix::unistd::sethostname(&cfg.hostname) {
        return step("cannot set the host name", e.into());
    }
    if let Err(e) = become_user(cfg.uid, cfg.gid) {
        return step(&format!("cannot switch to user {}:{}", cfg.uid, cfg.gid), e);
    }
    if let Err(e) = std::env::set_current_dir(&cfg.cwd) {
        return step(
            &format!("cannot enter the working dir {}", cfg.cwd.display()),
            e,
        );
    }
    let stdio = || -> nix::Result<()> {
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDONLY, nix::sys::stat::Mode::empty())?;
        nix::unistd::dup2_stdin(null.as_fd())?;
        nix::unistd::dup2_stdout(out.as_fd())?;
        nix::unistd::dup2_stderr(err.as_fd())
    };
    if let Err(e) = stdio() {
        return step("cannot connect the task's output", e.into());
    }
    let e = nix::unistd::execve(&program.path, &program.argv, &program.env).unwrap_err();
    step(&format!("cannot run {:?}", program.path), e.into())
}

/// Undoes what the Rust runtime and the shim changed: SIGPIPE ignored,
/// blocked signals. Ignored dispositions survive exec, handlers do not.
fn reset_signals() -> io::Result<()> {
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
    ] {
        // SAFETY: SIG_DFL installs no Rust handler.
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    SigSet::all().thread_unblock()?;
    Ok(())
}

fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    let gid = Gid::from_raw(gid);
    nix::unistd::setgroups(&[gid])?;
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(Uid::from_raw(uid))?;
    Ok(())
}

/// `__task-exec <task dir> <cmd>...`: exit code of the command (128+signal
/// when signalled), 126/127 when it cannot run.
fn exec(args: &[OsString]) -> i32 {
    match exec_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exec: {e}");
            126
        }
    }
}

fn exec_inner(args: &[OsString]) -> io::Result<i32> {
    let (Some(dir), Some(_)) = (args.first(), args.get(1)) else {
        return Err(io::Error::other("usage: __task-exec <task dir> <cmd>..."));
    };
    let dir = TaskDir(PathBuf::from(dir));
    let cmd: Vec<String> = args[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cfg: TaskConfig = read_json(&dir.config())?.ok_or_else(|| io::Error::other("no task"))?;
    let pid: PidFile =
        read_json(&dir.pid())?.ok_or_else(|| io::Error::other("the task is not running"))?;
    if !super::config::alive(pid.pid, pid.start_time) || dir.exit().exists() {
        return Err(io::Error::other("the task is not running"));
    }
    if cfg.image.is_some() {
        let dirs = ContainerDirs::new(dir.path());
        let child = container::enter(&dirs, &cfg.task_id, &cmd).map_err(io::Error::other)?;
        return wait_code(child);
    }
    for procs in &cfg.cgroup_procs {
        std::fs::write(procs, "0")?;
    }
    enter_all(pid.pid)?;
    // SAFETY: single-threaded (see the module docs).
    match unsafe { fork() }? {
        ForkResult::Child => {
            let path = env_value(&cfg.env, "PATH").unwrap_or_default();
            let e = match resolve_program(&cmd[0], path) {
                None => io::Error::other(format!("{}: command not found", cmd[0])),
                Some(p) => {
                    let run = || -> io::Result<io::Error> {
                        reset_signals()?;
                        become_user(cfg.uid, cfg.gid)?;
                        let _ = std::env::set_current_dir(&cfg.cwd);
                        let prog = Program::new(&p, &cmd, &cfg.env)?;
                        let e = nix::unistd::execve(&prog.path, &prog.argv, &prog.env);
                        Ok(e.map_or_else(io::Error::from, |_| io::Error::other("exec returned")))
                    };
                    run().unwrap_or_else(|e| e)
                }
            };
            eprintln!("exec: {e}");
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => wait_code(child),
    }
}

/// Waits for `child`: its exit code, 128+signal when signalled.
fn wait_code(child: Pid) -> io::Result<i32> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
