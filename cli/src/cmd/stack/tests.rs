//! The plan: only changed services update, and the diff names the fields.

use super::plan::{self, Current, Existing};
use crate::compose;

fn desired(image: &str) -> compose::Desired {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("s.yml");
    let text = format!(
        "services:\n  web:\n    image: {image}\n    command: sleep 1\n  db:\n    image: busybox\n    command: sleep 2\nsecrets:\n  pw:\n    content: hunter2\n"
    );
    std::fs::write(&p, text).expect("write");
    let loaded = compose::load::load_with_env(&[p], Default::default()).expect("load");
    compose::desired("app", &loaded.project)
}

fn deployed(d: &compose::Desired) -> Current {
    Current {
        services: d
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("id{i}"), s.clone()))
            .collect(),
        ..Current::default()
    }
}

#[test]
fn only_changed_services_update() {
    let cur = deployed(&desired("busybox:1"));
    let want = desired("busybox:2");
    let mut p = plan::objects("app", &want, &cur).expect("plan");
    plan::services(&mut p, "app", want.services.clone(), &cur, false);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.unchanged, ["app_db"]);
    assert_eq!(p.update[0].changes, ["image: busybox:1 -> busybox:2"]);
    let text = plan::render(&p);
    assert!(
        text.contains("~ service app_web: image: busybox:1 -> busybox:2"),
        "{text}"
    );
    assert!(text.contains("+ network app_default"), "{text}");
    assert!(text.contains("+ secret app_pw"), "{text}");
}

#[test]
fn prune_removes_only_the_stacks_services() {
    let mut cur = deployed(&desired("busybox:1"));
    let mut other = cur.services[0].1.clone();
    if let Some(a) = other.annotations.as_mut() {
        a.name = "app_old".into();
    }
    cur.services.push(("old".into(), other));
    let mut foreign = cur.services[0].1.clone();
    if let Some(a) = foreign.annotations.as_mut() {
        a.name = "x_web".into();
        a.labels.insert(compose::NAMESPACE_LABEL.into(), "x".into());
    }
    cur.services.push(("foreign".into(), foreign));
    let want = desired("busybox:1");
    let mut p = plan::objects("app", &want, &cur).expect("plan");
    plan::services(&mut p, "app", want.services.clone(), &cur, true);
    assert_eq!(p.remove, [("old".to_string(), "app_old".to_string())]);
    assert!(p.update.is_empty());
}

#[test]
fn existing_secrets_go_to_the_manager_for_comparison() {
    let want = desired("busybox:1");
    let cur = Current {
        secrets: vec![Existing {
            id: "s1".into(),
            name: "app_pw".into(),
            data: None,
        }],
        ..Current::default()
    };
    let p = plan::objects("app", &want, &cur).expect("plan");
    assert!(p.secrets.is_empty());
    assert_eq!(p.existing_secrets.len(), 1);
}

#[test]
fn missing_external_is_an_error() {
    let mut want = desired("busybox:1");
    want.external_networks.push("corp".into());
    let e = plan::objects("app", &want, &Current::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("network \"corp\" is declared as external"),
        "{e}"
    );
}
