//! `--secret` / `--config` references, before their names become ids.

/// A `--secret` / `--config` before its name is resolved to an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The secret's or config's name (or id).
    pub source: String,
    /// The file name in the task; empty for the default.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// `NAME`, or `source=NAME,target=PATH,uid=0,gid=0,mode=0400`.
pub fn file_ref(s: &str) -> Result<FileRef, String> {
    let mut r = FileRef {
        source: String::new(),
        target: String::new(),
        uid: 0,
        gid: 0,
        mode: 0o444,
    };
    if !s.contains('=') {
        r.source = s.to_string();
    } else {
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("invalid field {field:?} in {s:?}: expected key=value"))?;
            let number = |what: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("invalid {what} {v:?}: expected a number"))
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "source" | "src" => r.source = v.to_string(),
                "target" => r.target = v.to_string(),
                "uid" => r.uid = number("uid")?,
                "gid" => r.gid = number("gid")?,
                "mode" => {
                    r.mode = u32::from_str_radix(v, 8)
                        .map_err(|_| format!("invalid mode {v:?}: expected octal, e.g. 0400"))?
                }
                other => {
                    return Err(format!(
                        "invalid field {other:?} in {s:?}: use source, target, uid, gid or mode"
                    ));
                }
            }
        }
    }
    if r.source.is_empty() {
        return Err(format!("invalid reference {s:?}: source is required"));
    }
    Ok(r)
}
