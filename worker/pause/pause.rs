//! The only process of a Docker task's network sandbox: it holds the
//! namespace Shoal wires, and nothing else. `no_std` and without a libc so
//! the build makes it static and about a kilobyte without a musl target;
//! the daemon imports it as the image `shoal/pause` (see
//! `exec::docker::sandbox`). It ignores every signal, as PID 1 without
//! handlers does; Shoal removes sandboxes with SIGKILL.
#![no_std]
#![no_main]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The entry point the kernel jumps to: sleep until killed.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    loop {
        // SAFETY: a syscall that takes no memory and only blocks.
        unsafe { sleep() };
    }
}

/// pause(2).
#[cfg(target_arch = "x86_64")]
unsafe fn sleep() {
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") 34usize => _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
}

/// ppoll(NULL, 0, NULL, NULL, 0), which blocks forever: arm64 has no pause(2).
#[cfg(target_arch = "aarch64")]
unsafe fn sleep() {
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") 73usize,
            inlateout("x0") 0usize => _,
            in("x1") 0usize,
            in("x2") 0usize,
            in("x3") 0usize,
            in("x4") 0usize,
            options(nostack)
        )
    };
}
