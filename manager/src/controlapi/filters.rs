//! Docker's list filters: names and ids match by prefix, labels as `key`
//! or `key=value`; an empty filter list matches everything.

use std::collections::BTreeMap;

use shoal_proto::control::ListFilters;

/// Whether an object with this id, name and labels passes `filters`.
pub fn matches(
    filters: Option<&ListFilters>,
    id: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(f) = filters else { return true };
    let any = |list: &[String], pred: &dyn Fn(&str) -> bool| {
        list.is_empty() || list.iter().any(|x| pred(x))
    };
    any(&f.names, &|n| name == n)
        && any(&f.name_prefixes, &|p| name.starts_with(p))
        && any(&f.id_prefixes, &|p| id.starts_with(p))
        && f.labels.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_labels() {
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let f = |names: &[&str], ids: &[&str], labels_f: &[&str]| ListFilters {
            names: names.iter().map(|s| s.to_string()).collect(),
            id_prefixes: ids.iter().map(|s| s.to_string()).collect(),
            labels: labels_f.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(matches(None, "abc", "web", &labels));
        assert!(matches(Some(&f(&["web"], &[], &[])), "abc", "web", &labels));
        assert!(!matches(Some(&f(&["we"], &[], &[])), "abc", "web", &labels));
        assert!(matches(
            Some(&f(&[], &["ab"], &["env"])),
            "abc",
            "web",
            &labels
        ));
        assert!(matches(
            Some(&f(&[], &[], &["env=prod"])),
            "abc",
            "web",
            &labels
        ));
        assert!(!matches(
            Some(&f(&[], &[], &["env=dev"])),
            "abc",
            "web",
            &labels
        ));
    }
}
