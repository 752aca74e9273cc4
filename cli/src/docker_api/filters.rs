//! Docker's `filters` query parameter: JSON mapping each key to its values,
//! as `{"name":{"web":true}}` (today's form) or `{"name":["web"]}` (the
//! form clients before API 1.22 sent). Values of one key are alternatives;
//! different keys must all match.

use std::collections::BTreeMap;

use serde::Deserialize;
use shoal_proto::control::ListFilters;

use super::error::ApiError;

/// Parsed filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    Set(BTreeMap<String, bool>),
    List(Vec<String>),
}

impl Filters {
    /// Parses the `filters` parameter (absent or empty: no filter).
    pub fn parse(raw: Option<&str>) -> Result<Filters, ApiError> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let map: BTreeMap<String, Values> = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        Ok(Filters(
            map.into_iter()
                .map(|(key, values)| {
                    let values = match values {
                        Values::Set(set) => set
                            .into_iter()
                            .filter(|(_, on)| *on)
                            .map(|(v, _)| v)
                            .collect(),
                        Values::List(list) => list,
                    };
                    (key, values)
                })
                .collect(),
        ))
    }

    /// The values given for `key` (empty: no filter on it).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// Refuses keys outside `allowed`, with Docker's message.
    pub fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
            None => Ok(()),
        }
    }

    /// Whether `value` passes the alternatives of `key` by `matches`.
    pub fn pass(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| matches(v))
    }

    /// Whether every `key` filter (`k`, or `k=v`) holds for the labels
    /// `label` looks up by name.
    pub fn labels_pass<'a>(&self, key: &str, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.get(key).iter().all(|l| match l.split_once('=') {
            Some((k, v)) => label(k) == Some(v),
            None => label(l).is_some(),
        })
    }

    /// The control API's filters for the keys it understands: `id` and
    /// `name` by prefix (as swarmkit matches them), `label`.
    pub fn to_list(&self) -> ListFilters {
        ListFilters {
            id_prefixes: self.get("id").to_vec(),
            name_prefixes: self.get("name").to_vec(),
            labels: self.get("label").to_vec(),
            ..ListFilters::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_forms_parse() {
        let f = Filters::parse(Some(
            r#"{"name":{"web":true,"api":true},"label":["env=prod"]}"#,
        ))
        .unwrap();
        assert_eq!(f.get("name"), ["api", "web"]);
        assert_eq!(f.get("label"), ["env=prod"]);
        assert!(f.get("id").is_empty());
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
    }

    #[test]
    fn bad_filters_are_refused_with_docker_words() {
        let err = Filters::parse(Some("{not json")).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        let f = Filters::parse(Some(r#"{"colour":{"red":true}}"#)).unwrap();
        assert_eq!(
            f.allow(&["name"]).unwrap_err().message,
            "invalid filter 'colour'"
        );
    }
}
