//! The subset of Go templates that `--format` takes in Docker's CLI:
//! `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`, `{{upper .X}}`,
//! `{{lower .X}}`, a leading `table ` for aligned output with a header row,
//! and the `\t` / `\n` escapes. Values are rendered from JSON, so a row type
//! only has to be `Serialize`.

use anyhow::{Context, bail};
use serde_json::Value;

use super::table;

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action { func: Func, path: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Plain,
    Json,
    Upper,
    Lower,
}

impl Template {
    /// Parses `src`; errors name the action that cannot be understood.
    pub fn parse(src: &str) -> anyhow::Result<Template> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, src),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("invalid --format {src:?}: unclosed action \"{{{{\""))?;
            parts.push(
                parse_action(&after[..end]).with_context(|| format!("invalid --format {src:?}"))?,
            );
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    /// The first field name of every action (`Spec` for `{{.Spec.Name}}`).
    pub fn top_fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Action { path, .. } => path.first().map(String::as_str),
            Part::Text(_) => None,
        })
    }

    /// Fails on the first top-level field not in `known`, listing them.
    pub fn check_fields(&self, known: &[&str]) -> anyhow::Result<()> {
        for field in self.top_fields() {
            if !known.contains(&field) {
                let list: Vec<String> = known.iter().map(|f| format!(".{f}")).collect();
                bail!(
                    "invalid --format: unknown field .{field}; the fields are {}",
                    list.join(" ")
                );
            }
        }
        Ok(())
    }

    /// The header row of a table: each action replaced by `header(field)`.
    pub fn header(&self, header: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action { path, .. } => {
                    if let Some(field) = path.last() {
                        out.push_str(&header(field));
                    }
                }
            }
        }
        out
    }

    /// Renders one value (a row, or an inspected object).
    pub fn render(&self, value: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action { func, path } => {
                    let v = lookup(value, path)?;
                    let text = match func {
                        Func::Json => serde_json::to_string(v)?,
                        Func::Plain => plain(v),
                        Func::Upper => plain(v).to_uppercase(),
                        Func::Lower => plain(v).to_lowercase(),
                    };
                    out.push_str(&text);
                }
            }
        }
        Ok(out)
    }

    /// Renders every row, one per line; a table gets a header and aligned
    /// columns, headed by `header(field)`.
    pub fn render_rows(
        &self,
        rows: &[Value],
        header: impl Fn(&str) -> String,
    ) -> anyhow::Result<String> {
        let mut out = String::new();
        if self.table {
            out.push_str(&self.header(header));
            out.push('\n');
        }
        for row in rows {
            out.push_str(&self.render(row)?);
            out.push('\n');
        }
        Ok(if self.table { table::align(&out) } else { out })
    }
}

fn parse_action(action: &str) -> anyhow::Result<Part> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let (func, arg) = match words.as_slice() {
        [arg] => (Func::Plain, *arg),
        ["json", arg] => (Func::Json, *arg),
        ["upper", arg] => (Func::Upper, *arg),
        ["lower", arg] => (Func::Lower, *arg),
        _ => bail!(
            "unsupported action \"{{{{{action}}}}}\": use {{{{.Field}}}}, {{{{json .}}}}, \
             {{{{json .Field}}}}, {{{{upper .Field}}}} or {{{{lower .Field}}}}"
        ),
    };
    let path = parse_path(arg)
        .with_context(|| format!("\"{{{{{action}}}}}\" is not a field such as .Name"))?;
    Ok(Part::Action { func, path })
}

fn parse_path(arg: &str) -> anyhow::Result<Vec<String>> {
    if arg == "." {
        return Ok(Vec::new());
    }
    let Some(rest) = arg.strip_prefix('.') else {
        bail!("missing leading '.'");
    };
    let path: Vec<String> = rest.split('.').map(str::to_string).collect();
    if path
        .iter()
        .any(|p| p.is_empty() || !p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        bail!("bad field name");
    }
    Ok(path)
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> anyhow::Result<&'a Value> {
    let mut cur = value;
    for (i, key) in path.iter().enumerate() {
        cur = match cur {
            Value::Object(map) => map.get(key),
            _ => None,
        }
        .with_context(|| {
            let at = if i == 0 {
                String::new()
            } else {
                format!(" in .{}", path[..i].join("."))
            };
            format!("template: no field .{key}{at}")
        })?;
    }
    Ok(cur)
}

/// A value as `{{.X}}` prints it: strings bare, the rest as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_text() {
        let t = Template::parse("{{.Name}}: {{ .Spec.Role }}").unwrap();
        let v = json!({"Name": "a", "Spec": {"Role": "manager"}});
        assert_eq!(t.render(&v).unwrap(), "a: manager");
        assert!(!t.table);
    }

    #[test]
    fn json_upper_lower_and_escapes() {
        let t = Template::parse("{{json .}}\\t{{upper .A}}{{lower .B}}{{json .C}}").unwrap();
        let v = json!({"A": "x", "B": "Y", "C": {"k": 1}});
        assert_eq!(
            t.render(&v).unwrap(),
            "{\"A\":\"x\",\"B\":\"Y\",\"C\":{\"k\":1}}\tXy{\"k\":1}"
        );
    }

    #[test]
    fn non_strings_print_as_go_does() {
        let t = Template::parse("{{.Self}} {{.N}}").unwrap();
        assert_eq!(t.render(&json!({"Self": true, "N": 3})).unwrap(), "true 3");
    }

    #[test]
    fn table_gets_a_header_and_alignment() {
        let t = Template::parse("table {{.ID}}\\t{{.ManagerStatus}}").unwrap();
        assert!(t.table);
        let rows = [json!({"ID": "abc", "ManagerStatus": "Leader"})];
        let out = t
            .render_rows(&rows, |f| {
                if f == "ManagerStatus" {
                    "MANAGER STATUS".into()
                } else {
                    f.to_uppercase()
                }
            })
            .unwrap();
        assert_eq!(out, "ID        MANAGER STATUS\nabc       Leader\n");
    }

    #[test]
    fn unknown_fields_are_clear_errors() {
        let t = Template::parse("{{.Nope}}").unwrap();
        let err = t.check_fields(&["ID", "Name"]).unwrap_err().to_string();
        assert!(
            err.contains("unknown field .Nope") && err.contains(".ID .Name"),
            "{err}"
        );
        let err = t.render(&json!({"ID": "x"})).unwrap_err().to_string();
        assert!(err.contains("no field .Nope"), "{err}");
        let err = Template::parse("{{.Spec.X}}")
            .unwrap()
            .render(&json!({"Spec": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no field .X in .Spec"), "{err}");
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["{{.Name", "{{index .A 1}}", "{{Name}}", "{{.A..B}}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
