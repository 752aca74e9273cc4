//! What this build is, for `shoal version` and the daemon's start-up log.

/// The crate version of this build (all workspace crates share it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the build came from, or "unknown" outside a checkout.
pub const GIT_COMMIT: &str = env!("SHOAL_GIT_COMMIT");
/// The compiler that made this build.
pub const RUSTC: &str = env!("SHOAL_RUSTC_VERSION");
/// Version of the local API. A client refuses a daemon with another one.
pub const API_VERSION: u32 = 1;

/// The operating system, as Docker names it.
pub fn os() -> &'static str {
    std::env::consts::OS
}

/// The architecture, as Docker names it (`amd64`, `arm64`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The version facts of this build as a protocol message.
pub fn version_info() -> crate::local::VersionInfo {
    crate::local::VersionInfo {
        version: VERSION.to_string(),
        api_version: API_VERSION,
        git_commit: GIT_COMMIT.to_string(),
        os: os().to_string(),
        arch: arch().to_string(),
        rustc: RUSTC.to_string(),
    }
}
