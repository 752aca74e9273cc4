//! `--mount`: volume, bind and tmpfs mounts in Docker's CSV syntax.

use shoal_proto::objects::{Mount, mount};

use super::scalars::{boolean, memory};

/// `type=volume|bind|tmpfs,source=..,target=..,readonly`; `src`, `dst`,
/// `destination`, `ro` as Docker also accepts, and a named volume's
/// `volume-label=K=V`, `volume-driver=`, `volume-opt=K=V`, `volume-nocopy`.
/// Fields are CSV, as Docker's: `"volume-opt=o=addr=10.0.0.1,rw"` in
/// double quotes keeps its comma.
pub fn mount(s: &str) -> Result<Mount, String> {
    let mut m = Mount::default();
    let mut volume_field = None;
    for field in csv_fields(s)?.iter().filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let key = k.trim().to_ascii_lowercase();
        if key.starts_with("volume-") {
            volume_field = Some(key.clone());
        }
        match key.as_str() {
            "type" => m.set_type(match v {
                "volume" => mount::Type::Volume,
                "bind" => mount::Type::Bind,
                "tmpfs" => mount::Type::Tmpfs,
                _ => {
                    return Err(format!(
                        "invalid mount type {v:?}: expected volume, bind or tmpfs"
                    ));
                }
            }),
            "source" | "src" => m.source = v.to_string(),
            "target" | "dst" | "destination" => m.target = v.to_string(),
            "readonly" | "ro" => {
                m.read_only = boolean(v).map_err(|e| format!("{e} in --mount {s:?}"))?
            }
            "tmpfs-size" => m.tmpfs_size_bytes = memory(v)?,
            "tmpfs-mode" => {
                m.tmpfs_mode = u32::from_str_radix(v, 8)
                    .map_err(|_| format!("invalid tmpfs-mode {v:?}: expected octal, e.g. 1777"))?
            }
            "volume-label" | "volume-opt" => {
                let (name, value) = v.split_once('=').unwrap_or((v, ""));
                if name.is_empty() {
                    return Err(format!(
                        "invalid {key} {v:?} in --mount {s:?}: expected {key}=KEY=VALUE"
                    ));
                }
                let map = match key.as_str() {
                    "volume-label" => &mut m.volume_labels,
                    _ => &mut m.volume_options,
                };
                map.insert(name.to_string(), value.to_string());
            }
            "volume-driver" => m.volume_driver = v.to_string(),
            "volume-nocopy" => {
                m.volume_nocopy = boolean(v).map_err(|e| format!("{e} in --mount {s:?}"))?
            }
            other => {
                return Err(format!(
                    "invalid field {other:?} in --mount {s:?}: use type, source, target, readonly, \
                     tmpfs-size, tmpfs-mode, volume-label, volume-driver, volume-opt or volume-nocopy"
                ));
            }
        }
    }
    if m.target.is_empty() {
        return Err(format!("invalid --mount {s:?}: target is required"));
    }
    if m.r#type() == mount::Type::Bind && m.source.is_empty() {
        return Err(format!(
            "invalid --mount {s:?}: a bind mount needs a source"
        ));
    }
    if m.r#type() == mount::Type::Tmpfs && !m.source.is_empty() {
        return Err(format!(
            "invalid --mount {s:?}: a tmpfs mount takes no source"
        ));
    }
    if let Some(field) = volume_field
        && m.r#type() != mount::Type::Volume
    {
        let kind = if m.r#type() == mount::Type::Bind {
            "bind"
        } else {
            "tmpfs"
        };
        return Err(format!(
            "invalid --mount {s:?}: cannot mix {field:?} with mount type {kind:?}"
        ));
    }
    Ok(m)
}

/// The fields of a CSV line, as Go's `encoding/csv` reads Docker's
/// `--mount`: commas split, double quotes group, `""` is a quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    if quoted {
        return Err(format!("invalid --mount {s:?}: unterminated quote"));
    }
    Ok(fields)
}
