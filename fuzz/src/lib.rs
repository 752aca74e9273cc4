//! What the fuzz targets share.

/// Where targets keep their scratch directories: `$SHOAL_FUZZ_SCRATCH`
/// (`run.sh` makes one and removes it), else `/dev/shm` when there is one
/// (the storage targets write and sync files on every input), else the
/// system's temporary directory.
pub fn scratch_root() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("SHOAL_FUZZ_SCRATCH") {
        return dir.into();
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// This fuzz target's scratch folder: one per process, under
/// [`scratch_root`], removed when the process ends normally.
pub fn scratch() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir_in(scratch_root()).expect("scratch dir"))
        .path()
}
