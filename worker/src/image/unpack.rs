//! One layer blob (gzip or plain tar) into one directory, in the form
//! overlayfs takes as a `lowerdir`:
//!
//! - `.wh.<name>` becomes a 0/0 character device `<name>` (a whiteout);
//! - `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory;
//! - modes, owners, mtimes, symlinks, hardlinks (within the layer), device
//!   nodes and `SCHILY.xattr.*` attributes are kept (this runs as root).
//!
//! Entries that would land outside the directory (`..`, absolute paths,
//! a path through a symlink, a hardlink to outside) make the layer
//! `Corrupt`. The tar crate writes files, directories and symlinks; this
//! module decides what may be written, and writes what tar-rs does not know
//! (whiteouts, device nodes) or would do differently (hardlinks: tar-rs
//! follows a symlink target, overlay wants the link itself).
//!
//! Blocking: run it on a blocking thread.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest as _, Sha256};
use tar::{Archive, EntryType};

use super::layerfs::{
    corrupt, fail, make_parent, remove_any, remove_dir, remove_unless_dir, set_metadata, set_mtime,
    set_xattrs, special, whiteout,
};
use super::{ImageError, hex};

/// What unpacking a layer found.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// `sha256:` of the blob as stored (compressed or not).
    pub blob_digest: String,
    /// `sha256:` of the uncompressed tar: the layer's diff_id.
    pub diff_id: String,
    /// Bytes of regular files.
    pub size: u64,
}

/// Unpacks the layer blob at `blob` into `dest` (an existing, empty
/// directory), hashing both the blob and the uncompressed tar on the way
/// so the caller can check them against the manifest and config.
pub(crate) fn unpack_layer(blob: &Path, dest: &Path) -> Result<Unpacked, ImageError> {
    let file = File::open(blob).map_err(|e| fail("opening the layer blob", e))?;
    let mut blob_reader = BufReader::with_capacity(1 << 16, Hashing::new(file));
    let magic = blob_reader
        .fill_buf()
        .map_err(|e| fail("reading the layer blob", e))?;
    let (diff_id, size) = if magic.starts_with(&[0x1f, 0x8b]) {
        let mut gz = MultiGzDecoder::new(blob_reader);
        let unpacked = unpack_tar(&mut gz, dest)?;
        blob_reader = gz.into_inner();
        unpacked
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(ImageError::Unsupported(
            "zstd-compressed layers are not supported".into(),
        ));
    } else {
        unpack_tar(&mut blob_reader, dest)?
    };
    // Whatever follows the compressed stream is part of the blob too.
    io::copy(&mut blob_reader, &mut io::sink()).map_err(|e| fail("reading the layer blob", e))?;
    Ok(Unpacked {
        blob_digest: blob_reader.into_inner().digest(),
        diff_id,
        size,
    })
}

/// Unpacks an uncompressed tar stream; returns its diff_id and size.
fn unpack_tar(reader: impl Read, dest: &Path) -> Result<(String, u64), ImageError> {
    let mut tar = Hashing::new(reader);
    let size = {
        let mut archive = Archive::new(BlockPadded::new(&mut tar));
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        unpack_entries(&mut archive, dest)?
    };
    // The diff_id covers the whole stream, end-of-archive padding included.
    io::copy(&mut tar, &mut io::sink()).map_err(|e| fail("reading the layer", e))?;
    Ok((tar.digest(), size))
}

fn unpack_entries<R: Read>(archive: &mut Archive<R>, dest: &Path) -> Result<u64, ImageError> {
    // Directory mtimes are set last: creating their children changes them.
    let mut dirs = Vec::new();
    let mut size = 0;
    for entry in archive
        .entries()
        .map_err(|e| fail("reading the layer", e))?
    {
        let mut entry = entry.map_err(|e| fail("reading the layer", e))?;
        let raw = entry
            .path()
            .map_err(|e| fail("reading the layer", e))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            continue;
        }
        let Some(rel) = inside(&raw)? else {
            // The layer root itself ("./" or "/").
            set_metadata(dest, entry.header(), true)?;
            dirs.push((dest.to_path_buf(), entry.header().clone()));
            continue;
        };
        check_parents(dest, &rel)?;
        let name = rel.file_name().unwrap_or_default().as_bytes();
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            whiteout(dest, &rel, hidden)?;
            continue;
        }
        let path = dest.join(&rel);
        let what = || rel.display().to_string();
        match kind {
            EntryType::Directory => {
                let xattrs = pax_xattrs(&mut entry)?;
                remove_unless_dir(&path)?;
                unpack_in(&mut entry, dest, &rel)?;
                set_xattrs(&path, &xattrs)?;
                dirs.push((path, entry.header().clone()));
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| fail("reading the layer", e))?
                    .ok_or_else(|| corrupt(&what(), "hardlink without a target"))?;
                let target =
                    inside(&link)?.ok_or_else(|| corrupt(&what(), "hardlink to the layer root"))?;
                check_parents(dest, &target)?;
                let target = dest.join(target);
                match fs::symlink_metadata(&target) {
                    Ok(meta) if !meta.is_dir() => {}
                    _ => return Err(corrupt(&what(), "hardlink to a missing file")),
                }
                remove_any(&path)?;
                make_parent(&path)?;
                // link(2), unlike tar-rs, does not follow a symlink target.
                fs::hard_link(&target, &path).map_err(|e| fail(&what(), e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                remove_any(&path)?;
                make_parent(&path)?;
                special(&path, entry.header())?;
                set_metadata(&path, entry.header(), true)?;
            }
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Symlink => {
                let xattrs = pax_xattrs(&mut entry)?;
                remove_dir(&path)?;
                if kind != EntryType::Symlink {
                    size += entry.size();
                }
                unpack_in(&mut entry, dest, &rel)?;
                set_xattrs(&path, &xattrs)?;
            }
            other => {
                return Err(corrupt(
                    &what(),
                    &format!("unsupported entry type {other:?}"),
                ));
            }
        }
    }
    for (dir, header) in dirs.iter().rev() {
        set_mtime(dir, header)?;
    }
    Ok(size)
}

/// The entry's path relative to the layer root; `None` for the root
/// itself; `Corrupt` when it is absolute or has `..`.
fn inside(path: &Path) -> Result<Option<PathBuf>, ImageError> {
    let mut rel = PathBuf::new();
    let mut absolute = false;
    for part in path.components() {
        match part {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => absolute = true,
            Component::ParentDir => {
                return Err(corrupt(
                    &path.display().to_string(),
                    "path escapes the layer",
                ));
            }
        }
    }
    match (rel.as_os_str().is_empty(), absolute) {
        (true, _) => Ok(None),
        (false, true) => Err(corrupt(&path.display().to_string(), "absolute path")),
        (false, false) => Ok(Some(rel)),
    }
}

/// Refuses a path whose parents (within the layer) are symlinks or not
/// directories: writing there would follow the link, maybe out of the layer.
fn check_parents(dest: &Path, rel: &Path) -> Result<(), ImageError> {
    let mut at = dest.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for part in &parents[..parents.len().saturating_sub(1)] {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(corrupt(
                    &rel.display().to_string(),
                    "path goes through a symlink",
                ));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(corrupt(
                    &rel.display().to_string(),
                    "parent is not a directory",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail(&at.display().to_string(), e)),
        }
    }
    Ok(())
}

fn unpack_in<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    rel: &Path,
) -> Result<(), ImageError> {
    match entry.unpack_in(dest) {
        Ok(true) => Ok(()),
        Ok(false) => Err(corrupt(
            &rel.display().to_string(),
            "path escapes the layer",
        )),
        Err(e) => Err(fail(&rel.display().to_string(), e)),
    }
}

/// `SCHILY.xattr.<name>` PAX records (file capabilities and the like).
fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| fail("reading the layer", e))?
    {
        for ext in extensions {
            let ext = ext.map_err(|e| fail("reading the layer", e))?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(xattrs)
}

/// Pads a tar stream that ends mid-block with zeros to the block's end.
/// Some writers (umoci, for one) end a layer right after the last file's
/// data, without its padding or the end-of-archive blocks; tar-rs wants
/// whole blocks. The padding is not hashed: diff_ids still catch any real
/// truncation.
struct BlockPadded<R> {
    inner: R,
    read: u64,
    padding: Option<u64>,
}

impl<R> BlockPadded<R> {
    fn new(inner: R) -> Self {
        BlockPadded {
            inner,
            read: 0,
            padding: None,
        }
    }
}

impl<R: Read> Read for BlockPadded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.padding.as_mut() {
            let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 && !buf.is_empty() {
            self.padding = Some((512 - self.read % 512) % 512);
            return self.read(buf);
        }
        Ok(n)
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn digest(self) -> String {
        format!("sha256:{}", hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::makedev;
    use std::ffi::CString;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use tar::Header;

    /// A tar with raw names (tar-rs' builder refuses `..` and absolute
    /// paths, which is what these tests need to write).
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Self {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn entry(mut self, name: &str, kind: EntryType, data: &[u8], link: Option<&str>) -> Self {
            let mut h = Header::new_gnu();
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(1000);
            h.set_gid(1001);
            h.set_mtime(1_000_000);
            if kind == EntryType::Char {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            }
            if let Some(link) = link {
                let bytes = link.as_bytes();
                h.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes);
            }
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn dir(self, name: &str) -> Self {
            self.entry(name, EntryType::Directory, b"", None)
        }

        fn file(self, name: &str, data: &str) -> Self {
            self.entry(name, EntryType::Regular, data.as_bytes(), None)
        }

        fn gzip(self, dir: &Path) -> PathBuf {
            use std::io::Write;
            let tar = self.0.into_inner().unwrap();
            let path = dir.join("layer.tar.gz");
            let mut gz =
                flate2::write::GzEncoder::new(File::create(&path).unwrap(), Default::default());
            gz.write_all(&tar).unwrap();
            gz.finish().unwrap();
            path
        }
    }

    fn unpack(tar: Tar) -> (tempfile::TempDir, Result<Unpacked, ImageError>) {
        let tmp = tempfile::tempdir().unwrap();
        let blob = tar.gzip(tmp.path());
        let dest = tmp.path().join("layer");
        fs::create_dir(&dest).unwrap();
        let result = unpack_layer(&blob, &dest);
        (tmp, result)
    }

    fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let c_name = CString::new(name).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: valid NUL-terminated strings and a buffer of buf.len() bytes.
        let n = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    }

    #[test]
    fn whiteouts_and_opaque_dirs_in_overlay_form() {
        let (tmp, result) = unpack(
            Tar::new()
                .dir("etc/")
                .file("etc/.wh.motd", "")
                .file("etc/.wh..wh..opq", "")
                .file("etc/passwd", "root:x:0:0::/:/bin/sh\n")
                .file("var/lib/.wh.gone", "")
                .file(".wh..wh.plnk", ""),
        );
        let unpacked = result.unwrap();
        let layer = tmp.path().join("layer");
        let motd = fs::symlink_metadata(layer.join("etc/motd")).unwrap();
        assert!(motd.file_type().is_char_device(), "{motd:?}");
        assert_eq!(motd.rdev(), 0);
        assert!(
            fs::symlink_metadata(layer.join("var/lib/gone"))
                .unwrap()
                .file_type()
                .is_char_device()
        );
        assert_eq!(
            xattr(&layer.join("etc"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            xattr(&layer.join("var/lib"), "trusted.overlay.opaque"),
            None
        );
        assert!(!layer.join("etc/.wh.motd").exists() && !layer.join(".wh..wh.plnk").exists());
        assert_eq!(unpacked.size, 22);
        let passwd = fs::metadata(layer.join("etc/passwd")).unwrap();
        assert_eq!(
            (passwd.uid(), passwd.gid(), passwd.mode() & 0o7777),
            (1000, 1001, 0o644)
        );
        assert_eq!(passwd.mtime(), 1_000_000);
        assert_eq!(fs::metadata(layer.join("etc")).unwrap().mtime(), 1_000_000);
    }

    #[test]
    fn digests_of_blob_and_tar() {
        let tar = Tar::new().file("a", "hello");
        let raw = {
            let mut t = Tar::new().file("a", "hello");
            t.0.finish().unwrap();
            t.0.into_inner().unwrap()
        };
        let (tmp, result) = unpack(tar);
        let unpacked = result.unwrap();
        assert_eq!(unpacked.diff_id, super::super::sha256_digest(&raw));
        let blob = fs::read(tmp.path().join("layer.tar.gz")).unwrap();
        assert_eq!(unpacked.blob_digest, super::super::sha256_digest(&blob));

        // An uncompressed tar is its own diff_id.
        let plain = tmp.path().join("plain.tar");
        fs::write(&plain, &raw).unwrap();
        let dest = tmp.path().join("plain");
        fs::create_dir(&dest).unwrap();
        let unpacked = unpack_layer(&plain, &dest).unwrap();
        assert_eq!(unpacked.diff_id, unpacked.blob_digest);
        assert_eq!(fs::read_to_string(dest.join("a")).unwrap(), "hello");
    }

    #[test]
    fn links_within_the_layer() {
        // A PAX record: "<length> <key>=<value>\n", the length counting itself.
        let record = "SCHILY.xattr.user.shoal=yes\n";
        let record = format!("{} {record}", record.len() + 3);
        let (tmp, result) = unpack(
            Tar::new()
                .entry(
                    "PaxHeaders/busybox",
                    EntryType::XHeader,
                    record.as_bytes(),
                    None,
                )
                .file("bin/busybox", "elf")
                .entry("bin/sh", EntryType::Link, b"", Some("bin/busybox"))
                .entry("bin/ls", EntryType::Symlink, b"", Some("busybox"))
                .entry("bin/abs", EntryType::Symlink, b"", Some("/etc/shadow"))
                .entry("dev/null", EntryType::Char, b"", None),
        );
        result.unwrap();
        let layer = tmp.path().join("layer");
        let (a, b) = (
            fs::metadata(layer.join("bin/busybox")).unwrap(),
            fs::metadata(layer.join("bin/sh")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            xattr(&layer.join("bin/busybox"), "user.shoal").as_deref(),
            Some(&b"yes"[..])
        );
        assert_eq!(
            fs::read_link(layer.join("bin/ls")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read_link(layer.join("bin/abs")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(
            fs::symlink_metadata(layer.join("bin/ls")).unwrap().uid(),
            1000
        );
        let null = fs::symlink_metadata(layer.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
    }

    #[test]
    fn escapes_are_corrupt() {
        let cases = [
            Tar::new().file("../evil", "x"),
            Tar::new().file("a/../../evil", "x"),
            Tar::new().file("/etc/evil", "x"),
            // Through a symlink of the same layer, even one pointing inside.
            Tar::new()
                .entry("lnk", EntryType::Symlink, b"", Some("/etc"))
                .file("lnk/evil", "x"),
            Tar::new()
                .dir("d/")
                .entry("lnk", EntryType::Symlink, b"", Some("d"))
                .file("lnk/evil", "x"),
            Tar::new()
                .entry("lnk", EntryType::Symlink, b"", Some("/etc"))
                .file("lnk/.wh.passwd", ""),
            Tar::new().entry("h", EntryType::Link, b"", Some("../../etc/passwd")),
            Tar::new().entry("h", EntryType::Link, b"", Some("/etc/passwd")),
            Tar::new().entry("h", EntryType::Link, b"", Some("missing")),
        ];
        for (i, tar) in cases.into_iter().enumerate() {
            let (tmp, result) = unpack(tar);
            assert!(
                matches!(result, Err(ImageError::Corrupt(_))),
                "case {i}: {result:?}"
            );
            assert!(!tmp.path().join("evil").exists());
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("layer");
        fs::create_dir(&dest).unwrap();
        let blob = tmp.path().join("blob");
        // A gzip header followed by junk.
        fs::write(
            &blob,
            [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7],
        )
        .unwrap();
        assert!(matches!(
            unpack_layer(&blob, &dest),
            Err(ImageError::Corrupt(_))
        ));
        fs::write(&blob, [0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap();
        assert!(matches!(
            unpack_layer(&blob, &dest),
            Err(ImageError::Unsupported(_))
        ));
    }
}
