//! `--filter key=value`, as Docker's: values of one key are alternatives,
//! different keys must all match; `label=k` or `label=k=v`. The filters are
//! sent to the daemon where [`ListFilters`] has a field for them, and applied
//! again here so the result is the same whatever the daemon does with them.

use std::collections::BTreeMap;

use anyhow::bail;
use shoal_proto::control::ListFilters;

/// Parses one `key=value` (clap value parser).
pub fn parse_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_lowercase(), v.to_string())),
        _ => Err(format!("bad format of filter {s:?} (expected name=value)")),
    }
}

/// The filters of one `ls`, checked against the keys it accepts.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    entries: Vec<(String, String)>,
}

impl Filters {
    /// Checks every key against `allowed`, like Docker's "Invalid filter".
    pub fn new(entries: Vec<(String, String)>, allowed: &[&str]) -> anyhow::Result<Filters> {
        for (key, _) in &entries {
            if !allowed.contains(&key.as_str()) {
                bail!("invalid filter '{key}' (accepted: {})", allowed.join(", "));
            }
        }
        Ok(Filters { entries })
    }

    /// The values given for `key`.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `key` is absent or one of its values satisfies `pred`.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let mut values = self.values(key).peekable();
        values.peek().is_none() || values.any(pred)
    }

    /// `id=`: prefix of the id.
    pub fn id_ok(&self, id: &str) -> bool {
        self.any("id", |v| id.starts_with(v))
    }

    /// `name=`: prefix of the name (Docker's swarm objects).
    pub fn name_prefix_ok(&self, name: &str) -> bool {
        self.any("name", |v| name.starts_with(v))
    }

    /// `name=`: part of the name (Docker's networks).
    pub fn name_part_ok(&self, name: &str) -> bool {
        self.any("name", |v| name.contains(v))
    }

    /// Every `key` filter (`label`, `node.label`) holds on `labels`.
    pub fn labels_ok(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.values(key).all(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(want),
        })
    }

    /// What the daemon can filter by; `send_names` is false where Docker
    /// matches names by substring, which [`ListFilters`] cannot say.
    pub fn to_proto(&self, send_names: bool, send_labels: bool) -> ListFilters {
        let owned = |key| self.values(key).map(str::to_string).collect();
        ListFilters {
            id_prefixes: owned("id"),
            name_prefixes: if send_names {
                owned("name")
            } else {
                Vec::new()
            },
            labels: if send_labels {
                owned("label")
            } else {
                Vec::new()
            },
            roles: owned("role"),
            ..ListFilters::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(list: &[&str], allowed: &[&str]) -> anyhow::Result<Filters> {
        let entries = list.iter().map(|s| parse_filter(s).unwrap()).collect();
        Filters::new(entries, allowed)
    }

    #[test]
    fn parses_key_value() {
        assert_eq!(parse_filter("name=web"), Ok(("name".into(), "web".into())));
        assert_eq!(
            parse_filter("label=a=b"),
            Ok(("label".into(), "a=b".into()))
        );
        assert_eq!(parse_filter("Role=manager").unwrap().0, "role");
        assert!(parse_filter("name").is_err());
        assert!(parse_filter("=x").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = filters(&["colour=red"], &["name", "id"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter 'colour' (accepted: name, id)"
        );
    }

    #[test]
    fn same_key_ors_other_keys_and() {
        let f = filters(&["name=web", "name=api", "id=ab"], &["name", "id"]).unwrap();
        assert!(f.name_prefix_ok("web-1") && f.name_prefix_ok("api"));
        assert!(!f.name_prefix_ok("db"));
        assert!(f.id_ok("abc") && !f.id_ok("bca"));
        assert!(filters(&[], &[]).unwrap().name_prefix_ok("anything"));
        let f = filters(&["name=eb"], &["name"]).unwrap();
        assert!(f.name_part_ok("web") && !f.name_prefix_ok("web"));
    }

    #[test]
    fn labels_by_key_or_key_value() {
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let f = filters(&["label=env"], &["label"]).unwrap();
        assert!(f.labels_ok("label", &labels));
        let f = filters(&["label=env=prod", "label=env"], &["label"]).unwrap();
        assert!(f.labels_ok("label", &labels));
        let f = filters(&["label=env=dev"], &["label"]).unwrap();
        assert!(!f.labels_ok("label", &labels));
    }

    #[test]
    fn sent_to_the_daemon() {
        let f = filters(
            &["name=w", "id=1", "label=a", "role=manager"],
            &["name", "id", "label", "role"],
        )
        .unwrap();
        let p = f.to_proto(true, true);
        assert_eq!(p.name_prefixes, ["w"]);
        assert_eq!(p.id_prefixes, ["1"]);
        assert_eq!(p.labels, ["a"]);
        assert_eq!(p.roles, ["manager"]);
        assert!(f.to_proto(false, false).name_prefixes.is_empty());
    }
}
