//! The data of `secret create` and `config create`: read from a file or
//! stdin (`-`), refused here, before any daemon is contacted, when empty or
//! over the limit, and `--label k=v` parsing.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};

/// Docker's limit on a secret's data: 500 KB.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;
/// Docker's limit on a config's data: 1000 KB.
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

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

/// Refuses empty data and data over `max` bytes.
pub fn check(kind: &str, data: &[u8], max: usize) -> anyhow::Result<()> {
    if data.is_empty() {
        bail!("{kind} data is empty: a {kind} needs at least one byte");
    }
    if data.len() > max {
        bail!(
            "{kind} data is too large: more than {} KB ({max} bytes), the most a {kind} may hold",
            max / 1024
        );
    }
    Ok(())
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
    fn limit_is_500_kb_for_secrets() {
        assert!(check("secret", &vec![b'x'; MAX_SECRET_SIZE], MAX_SECRET_SIZE).is_ok());
        let err = check("secret", &vec![b'x'; MAX_SECRET_SIZE + 1], MAX_SECRET_SIZE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too large") && err.contains("500 KB"), "{err}");
        let err = check("secret", b"", MAX_SECRET_SIZE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
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
