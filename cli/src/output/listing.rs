//! What `ls` and `inspect` print for a `--format` value, as Docker's CLI:
//! no format is the command's default table, `json` is one JSON object per
//! line (`{{json .}}`), `table` alone is the default table, anything else is
//! a template. `inspect` prints a 4-space-indented JSON array, or the
//! template once per object.

use serde::Serialize;
use serde_json::Value;

use super::template::Template;

/// How one `ls` command presents its rows.
pub struct Listing {
    /// The default table, e.g. `table {{.ID}}\t{{.Name}}`.
    pub default_table: &'static str,
    /// Every template field a row has, in display order.
    pub fields: &'static [&'static str],
    /// Headers that are not the field's words in capitals (`ID` → `NETWORK ID`).
    pub headers: &'static [(&'static str, &'static str)],
}

impl Listing {
    /// The template that `--format` asks for, checked against the fields.
    pub fn template(&self, format: Option<&str>) -> anyhow::Result<Template> {
        let src = match format.map(str::trim) {
            None | Some("") | Some("table") => self.default_table,
            Some("json") => "{{json .}}",
            Some(other) => other,
        };
        let template = Template::parse(src)?;
        template.check_fields(self.fields)?;
        Ok(template)
    }

    /// The column header of `field`.
    pub fn header(&self, field: &str) -> String {
        self.headers
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, h)| (*h).to_string())
            .unwrap_or_else(|| words_upper(field))
    }

    /// Renders `rows` for `--format`.
    pub fn render<T: Serialize>(&self, format: Option<&str>, rows: &[T]) -> anyhow::Result<String> {
        let template = self.template(format)?;
        let values = rows
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<Value>, _>>()?;
        template.render_rows(&values, |f| self.header(f))
    }
}

/// `ManagerStatus` → `MANAGER STATUS`, `ID` → `ID`.
pub fn words_upper(field: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = field.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if starts_word {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Renders inspected objects: Docker's indented JSON array, or the
/// template once per object (`json` means the array too).
pub fn render_inspect<T: Serialize>(format: Option<&str>, objects: &[T]) -> anyhow::Result<String> {
    match format.map(str::trim) {
        None | Some("") | Some("json") => {
            // Serialized from the structs, so keys keep Docker's order.
            let mut out = indented_json(&objects)?;
            out.push('\n');
            Ok(out)
        }
        Some(src) => {
            let template = Template::parse(src)?;
            let mut out = String::new();
            for object in objects {
                out.push_str(&template.render(&serde_json::to_value(object)?)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// JSON indented with 4 spaces, as `docker inspect` prints it.
pub fn indented_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const L: Listing = Listing {
        default_table: "table {{.ID}}\t{{.Name}}",
        fields: &["ID", "Name", "CreatedAt"],
        headers: &[("ID", "NETWORK ID")],
    };

    #[test]
    fn headers_are_words_in_capitals() {
        assert_eq!(words_upper("ManagerStatus"), "MANAGER STATUS");
        assert_eq!(words_upper("ID"), "ID");
        assert_eq!(words_upper("EngineVersion"), "ENGINE VERSION");
        assert_eq!(L.header("ID"), "NETWORK ID");
        assert_eq!(L.header("CreatedAt"), "CREATED AT");
    }

    #[test]
    fn formats_select_table_json_or_template() {
        let rows = [json!({"ID": "a1", "Name": "web", "CreatedAt": "x"})];
        assert_eq!(
            L.render(None, &rows).unwrap(),
            "NETWORK ID   NAME\na1           web\n"
        );
        assert_eq!(
            L.render(Some("table"), &rows).unwrap(),
            L.render(None, &rows).unwrap()
        );
        assert_eq!(
            L.render(Some("json"), &rows).unwrap(),
            "{\"CreatedAt\":\"x\",\"ID\":\"a1\",\"Name\":\"web\"}\n"
        );
        assert_eq!(L.render(Some("{{.Name}}"), &rows).unwrap(), "web\n");
        assert!(L.render(Some("{{.Bogus}}"), &rows).is_err());
        // Unknown fields fail even with nothing to list.
        assert!(L.render::<Value>(Some("{{.Bogus}}"), &[]).is_err());
    }

    #[test]
    fn inspect_is_a_four_space_array_or_a_template() {
        let objs = [json!({"ID": "a"})];
        assert_eq!(
            render_inspect(None, &objs).unwrap(),
            "[\n    {\n        \"ID\": \"a\"\n    }\n]\n"
        );
        assert_eq!(render_inspect(Some("{{.ID}}"), &objs).unwrap(), "a\n");
    }
}
