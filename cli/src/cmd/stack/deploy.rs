//! `stack deploy` and `stack diff`: load the files (no daemon needed for
//! their errors), read what the cluster has, plan, then either print the
//! plan or carry it out: one atomic batch for networks, secrets and
//! configs, then service creates and updates (only services whose spec
//! differs), then `--prune` removals.

use anyhow::Context;
use shoal_proto::control::{
    BatchRequest, CreateServiceRequest, ListConfigsRequest, ListFilters, ListNetworksRequest,
    ListSecretsRequest, RemoveServiceRequest,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{Annotations, ServiceSpec};

use super::DeployArgs;
use super::plan::{self, Current, Existing, Plan};
use crate::client::status_error;
use crate::cmd::common::Api;
use crate::cmd::service;
use crate::compose::{self, Desired};
use crate::host::Host;

fn all() -> Option<ListFilters> {
    Some(ListFilters::default())
}

fn existing(id: &str, a: Option<&Annotations>, data: Option<Vec<u8>>) -> Existing {
    Existing {
        id: id.to_string(),
        name: a.map(|a| a.name.clone()).unwrap_or_default(),
        data,
    }
}

/// What the cluster has now.
async fn current(api: &mut Api) -> anyhow::Result<Current> {
    let c = &mut api.control;
    let networks = c
        .list_networks(ListNetworksRequest { filters: all() })
        .joined()
        .await
        .map_err(status_error)?
        .networks;
    let secrets = c
        .list_secrets(ListSecretsRequest { filters: all() })
        .joined()
        .await
        .map_err(status_error)?
        .secrets;
    let configs = c
        .list_configs(ListConfigsRequest { filters: all() })
        .joined()
        .await
        .map_err(status_error)?
        .configs;
    let services = service::list_services(api).await?;
    Ok(Current {
        networks: networks
            .iter()
            .map(|n| {
                existing(
                    &n.id,
                    n.spec.as_ref().and_then(|s| s.annotations.as_ref()),
                    None,
                )
            })
            .collect(),
        secrets: secrets
            .iter()
            .map(|s| {
                existing(
                    &s.id,
                    s.spec.as_ref().and_then(|s| s.annotations.as_ref()),
                    None,
                )
            })
            .collect(),
        configs: configs
            .iter()
            .map(|s| {
                let spec = s.spec.as_ref();
                existing(
                    &s.id,
                    spec.and_then(|s| s.annotations.as_ref()),
                    spec.map(|s| s.data.clone()),
                )
            })
            .collect(),
        services: services
            .into_iter()
            .map(|s| (s.id, s.spec.unwrap_or_default()))
            .collect(),
    })
}

/// Swaps names for ids in a service's references; names of objects not
/// created yet (a dry run) stay as they are.
fn resolve(mut spec: ServiceSpec, cur: &Current) -> ServiceSpec {
    let id =
        |list: &[Existing], name: &str| list.iter().find(|e| e.name == name).map(|e| e.id.clone());
    if let Some(task) = spec.task.as_mut() {
        for n in &mut task.networks {
            if let Some(found) = id(&cur.networks, &n.target) {
                n.target = found;
            }
        }
        if let Some(c) = task.container.as_mut() {
            for s in &mut c.secrets {
                s.secret_id = id(&cur.secrets, &s.secret_name).unwrap_or_default();
            }
            for r in &mut c.configs {
                r.config_id = id(&cur.configs, &r.config_name).unwrap_or_default();
            }
        }
    }
    spec
}

fn load(args: &DeployArgs) -> anyhow::Result<Desired> {
    let loaded = compose::load(&args.compose_file)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(compose::desired(&args.stack, &loaded.project))
}

fn plan_for(args: &DeployArgs, desired: &Desired, cur: &Current) -> anyhow::Result<Plan> {
    let mut p = plan::objects(&args.stack, desired, cur)?;
    let specs = desired
        .services
        .iter()
        .cloned()
        .map(|s| resolve(s, cur))
        .collect();
    plan::services(&mut p, &args.stack, specs, cur, args.prune);
    Ok(p)
}

/// `--resolve-image`: each service's image pinned to its digest, or kept
/// as the running spec has it when the reference did not change.
async fn pin_images(
    api: &Api,
    args: &DeployArgs,
    desired: &mut Desired,
    cur: &Current,
) -> anyhow::Result<()> {
    let mode = args.resolve_image.unwrap_or_default();
    for spec in &mut desired.services {
        let name = super::name(&spec.annotations);
        let before = cur
            .services
            .iter()
            .find(|(_, s)| super::name(&s.annotations) == name)
            .and_then(|(_, s)| s.task.as_ref())
            .and_then(|t| t.container.as_ref())
            .map(|c| c.image.clone());
        service::resolve::pin(api, spec, mode, before.as_deref()).await?;
    }
    Ok(())
}

/// `stack diff` and `stack deploy --dry-run`.
pub async fn diff(host: &Host, args: DeployArgs) -> anyhow::Result<()> {
    super::check_stack_name(&args.stack)?;
    let mut desired = load(&args)?;
    let mut api = Api::connect(host).await?;
    let cur = current(&mut api).await?;
    pin_images(&api, &args, &mut desired, &cur).await?;
    let p = plan_for(&args, &desired, &cur)?;
    print!("{}", plan::render(&p));
    Ok(())
}

/// `stack deploy`.
pub async fn deploy(host: &Host, args: DeployArgs) -> anyhow::Result<()> {
    if args.dry_run {
        return diff(host, args).await;
    }
    super::check_stack_name(&args.stack)?;
    let mut desired = load(&args)?;
    let mut api = Api::connect(host).await?;
    let mut cur = current(&mut api).await?;
    pin_images(&api, &args, &mut desired, &cur).await?;
    let p = plan_for(&args, &desired, &cur)?;
    if !(p.networks.is_empty()
        && p.secrets.is_empty()
        && p.configs.is_empty()
        && p.existing_secrets.is_empty())
    {
        api.control
            .batch(BatchRequest {
                secrets: p.secrets.clone(),
                configs: p.configs.clone(),
                networks: p.networks.clone(),
                existing_secrets: p.existing_secrets.clone(),
            })
            .await
            .map_err(status_error)?;
        // Said once they exist: a refused batch created none of them.
        for n in &p.networks {
            println!("Creating network {}", super::name(&n.annotations));
        }
        for s in &p.secrets {
            println!("Creating secret {}", super::name(&s.annotations));
        }
        for c in &p.configs {
            println!("Creating config {}", super::name(&c.annotations));
        }
        // The services' references now resolve to the new ids.
        cur = current(&mut api).await?;
    }
    let p = plan_for(&args, &desired, &cur)?;
    let mut follow = Vec::new();
    for mut spec in p.create {
        println!("Creating service {}", super::name(&spec.annotations));
        if args.with_registry_auth {
            crate::registry_auth::attach(&mut spec)?;
        }
        let created = api
            .control
            .create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .map_err(status_error)?
            .into_inner()
            .service
            .context("the daemon created the service but did not return it")?;
        follow.push((created.id, None));
    }
    for u in p.update {
        println!(
            "Updating service {} (id: {})",
            super::name(&u.spec.annotations),
            u.id
        );
        let before = service::update_service(&mut api, &u.id, false, |_, spec| {
            let force = spec.task.as_ref().map_or(0, |t| t.force_update);
            *spec = u.spec.clone();
            if let Some(t) = spec.task.as_mut() {
                t.force_update = force;
            }
            if args.with_registry_auth {
                crate::registry_auth::attach(spec)?;
            }
            Ok(())
        })
        .await?;
        follow.push((u.id, before.update_status));
    }
    for (service_id, name) in p.remove {
        println!("Removing service {name}");
        api.control
            .remove_service(RemoveServiceRequest { service_id })
            .await
            .map_err(status_error)?;
    }
    if !args.detach {
        for (id, baseline) in follow {
            service::follow(&mut api, &id, baseline).await?;
        }
    }
    Ok(())
}
