//! `docker-init`: the PID 1 of tasks run with Docker's `--init`, like tini
//! without options. `docker-init -- program args...` (`--` optional) runs
//! the program (an absolute path: the engine resolves it) as its child,
//! forwards every signal to it, reaps every zombie, and exits with the
//! child's status (128+N when killed by signal N). `no_std` and without a
//! libc, like `pause/pause.rs`, so it is static and runs in any image; see
//! `src/exec/oci/init.rs`.
#![no_std]
#![no_main]

use core::arch::global_asm;

/// Syscall numbers.
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const CLONE: usize = 56;
    pub const EXECVE: usize = 59;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const EXIT_GROUP: usize = 231;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const EXIT_GROUP: usize = 94;
    pub const KILL: usize = 129;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const CLONE: usize = 220;
    pub const EXECVE: usize = 221;
    pub const WAIT4: usize = 260;
}

const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;
const SIGCHLD: usize = 17;
const WNOHANG: usize = 1;
/// Every signal, as the kernel's `sigset_t` (SIGKILL, SIGSTOP: ignored).
static ALL: u64 = !0;

// The entry point: the kernel leaves argc, argv[], NULL, envp[], NULL at the
// stack pointer; hand it to `main` with the stack aligned for a call.
#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start: xor ebp, ebp; mov rdi, rsp; and rsp, -16; call {main}; ud2",
    main = sym main,
);
#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, sp",
    "bl {main}",
    "brk #0",
    main = sym main,
);

/// A raw syscall with up to four arguments: the result, or -errno.
fn sys(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: every call site passes arguments valid for its syscall.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a,
            in("rsi") b, in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a => ret, in("x1") b,
            in("x2") c, in("x3") d, options(nostack));
    }
    ret
}

/// exit_group(2).
fn exit(code: usize) -> ! {
    loop {
        sys(nr::EXIT_GROUP, code, 0, 0, 0);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(1)
}

/// Writes to stderr.
fn write(bytes: &[u8]) {
    sys(nr::WRITE, 2, bytes.as_ptr() as usize, bytes.len(), 0);
}

/// The string at `s`, without its NUL. SAFETY: `s` points to a
/// NUL-terminated string that outlives the slice.
unsafe fn cstr<'a>(s: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: the caller's. (Volatile, or LLVM calls libc's strlen.)
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    // SAFETY: the caller's promise.
    unsafe { core::slice::from_raw_parts(s, n) }
}

/// `x` as a syscall argument the kernel writes.
fn out<T>(x: &mut T) -> usize {
    x as *mut T as usize
}

/// Runs the child and waits on signals; never returns.
extern "C" fn main(sp: *const usize) -> ! {
    // SAFETY: `sp` is the initial stack: argc, then argc argument pointers
    // and a NULL, then the environment's pointers and a NULL.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    let envp = argv.wrapping_add(argc + 1) as usize;
    // SAFETY: argv[1] exists if argc > 1, and is NUL-terminated.
    let first = 1 + usize::from(argc > 1 && unsafe { cstr(*argv.add(1)) } == b"--");
    if first >= argc {
        write(b"usage: docker-init [--] program [args...]\n");
        exit(1);
    }
    // Block every signal: they queue until rt_sigtimedwait takes them. (As
    // PID 1 of a namespace, blocked signals are queued, not ignored.)
    let (all, mut old) = (&ALL as *const u64 as usize, 0u64);
    sys(nr::RT_SIGPROCMASK, SIG_BLOCK, all, out(&mut old), 8);
    // fork(2): clone with only the signal to send the parent on exit.
    let child = sys(nr::CLONE, SIGCHLD, 0, 0, 0);
    if child < 0 {
        fail(b"fork", b"", -child);
        exit(1);
    }
    if child == 0 {
        // The child: the program gets the signal mask init started with.
        sys(nr::RT_SIGPROCMASK, SIG_SETMASK, out(&mut old), 0, 8);
        // SAFETY: argv[first] exists (first < argc) and is NUL-terminated.
        let (args, prog) = (argv.wrapping_add(first), unsafe { cstr(*argv.add(first)) });
        let err = sys(nr::EXECVE, prog.as_ptr() as usize, args as usize, envp, 0);
        fail(b"exec ", prog, -err);
        exit(127);
    }
    loop {
        // Wait for any signal, without timeout; -EINTR/-EAGAIN just retry.
        let sig = sys(nr::RT_SIGTIMEDWAIT, all, 0, 0, 8);
        if sig as usize == SIGCHLD {
            reap(child);
        } else if sig > 0 {
            // Forward it to the child only (tini without -g), even if gone.
            sys(nr::KILL, child as usize, sig as usize, 0, 0);
        }
    }
}

/// Reaps every exited child (the program's orphans too); exits with the
/// program's status once it is among them.
fn reap(child: isize) {
    let mut code = None;
    loop {
        let mut status: i32 = 0;
        let pid = sys(nr::WAIT4, usize::MAX, out(&mut status), WNOHANG, 0);
        if pid <= 0 {
            break; // 0: none exited yet; -ECHILD: no children left.
        }
        if pid == child {
            let (exited, signal) = ((status as usize >> 8) & 0xff, status as usize & 0x7f);
            code = Some(if signal == 0 { exited } else { 128 + signal });
        }
    }
    if let Some(code) = code {
        exit(code);
    }
}

/// "docker-init: <what><arg> failed: errno N" on stderr, piece by piece
/// (no arrays: unoptimized, they would call libc's memcpy and memset).
fn fail(what: &[u8], arg: &[u8], errno: isize) {
    write(b"docker-init: ");
    write(what);
    write(arg);
    write(b" failed: errno ");
    let n = errno.unsigned_abs();
    let mut unit = 1;
    while unit * 10 <= n {
        unit *= 10;
    }
    while unit > 0 {
        write(&[b'0' + (n / unit % 10) as u8]);
        unit /= 10;
    }
    write(b"\n");
}
