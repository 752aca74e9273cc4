//! The data of `secret create` and `config create`: read from a file or
//! stdin (`-`), refused here, before any daemon is contacted, when empty or
//! over the limit, and `--label k=v` parsing.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};
/// Docker's limits (secrets under 500 KiB, configs under 1000 KiB), the
/// same constants the manager checks.
pub use shoal_proto::limits::{MAX_CONFIG_SIZE, MAX_SECRET_SIZE};

/// Reads `source` (a path, or `-` for stdin) and checks its size.
pub fn read(kind: &str, source: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    // Read one byte past the limit: enough to refuse, without reading a
    // huge file whole.
    let cap = max as u64 + 1;
    if source == "-" {
        std::io::stdin()
            .lock()
            .take(cap)
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read the {kind} data from stdin"))?;
    } else {
        std::fs::File::open(source)
            .and_then(|f| f.take(cap).read_to_end(&mut data))
            .with_context(|| format!("cannot read the {kind} data from {source}"))?;
    }
    check(kind, &data, max)?;
    Ok(data)
}

/// Refuses empty data and data of `limit` bytes or more, in the words the
/// manager uses (Docker's).
pub fn check(kind: &str, data: &[u8], limit: usize) -> anyhow::Result<()> {
    shoal_proto::limits::check_data_size(kind, data.len(), limit).map_err(anyhow::Error::msg)
}

/// Parses `--label k=v` (or `k`, with an empty value) into a map.
pub fn labels(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            if k.is_empty() {
                bail!("invalid label {l:?}: the key is empty");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn limits_are_dockers_500_and_1000_kib() {
        assert!(check("secret", &vec![b'x'; MAX_SECRET_SIZE - 1], MAX_SECRET_SIZE).is_ok());
        let err = check("secret", &vec![b'x'; MAX_SECRET_SIZE], MAX_SECRET_SIZE)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "secret data must be larger than 0 and less than 512000 bytes (got 512000 bytes)"
        );
        let err = check("secret", b"", MAX_SECRET_SIZE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("larger than 0") && err.contains("got 0 bytes"),
            "{err}"
        );
        let err = check("config", &vec![b'x'; MAX_CONFIG_SIZE], MAX_CONFIG_SIZE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("less than 1024000 bytes"), "{err}");
    }

    #[test]
    fn reads_files_and_stops_past_the_limit() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![b'a'; 600 * 1024]).unwrap();
        let path = f.path().to_str().unwrap();
        assert!(read("secret", path, MAX_SECRET_SIZE).is_err());
        assert_eq!(
            read("config", path, MAX_CONFIG_SIZE).unwrap().len(),
            600 * 1024
        );
        let err = read("secret", "/nonexistent/file", MAX_SECRET_SIZE).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/file"));
    }

    #[test]
    fn labels_parse() {
        let l = labels(&["a=b".into(), "c".into(), "d=e=f".into()]).unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["c"], "");
        assert_eq!(l["d"], "e=f");
        assert!(labels(&["=x".into()]).is_err());
    }
}
