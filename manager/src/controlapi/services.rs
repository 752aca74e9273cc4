//! Services and tasks. The control API only records what the user asked
//! for: creating a service writes the service, and the orchestrators (on
//! the leader) turn it into tasks. Removing a service marks its tasks for
//! removal in the same batch, so no orchestrator ever sees tasks whose
//! service is gone but which still want to run.

use shoal_proto::control::*;
use shoal_proto::identity::new_id;
use shoal_proto::objects::{
    Config, Endpoint, PortConfig, Secret, Service, ServiceSpec, Task, TaskState, port_config,
    service_spec,
};
use tonic::Status;

mod bounds;

use super::counts::service_counts;
use super::filters::matches;
use super::resources::validate_name;
use crate::allocator::ports::ingress_ports_of;
use crate::context::ManagerContext;
use crate::store::Tables;

fn name_of(spec: Option<&ServiceSpec>) -> &str {
    spec.and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// The mode's name, as `service ls` and `--filter mode=` spell it.
pub fn mode_name(spec: Option<&ServiceSpec>) -> &'static str {
    match spec.and_then(|s| s.mode.as_ref()) {
        None | Some(service_spec::Mode::Replicated(_)) => "replicated",
        Some(service_spec::Mode::Global(_)) => "global",
        Some(service_spec::Mode::ReplicatedJob(_)) => "replicated-job",
        Some(service_spec::Mode::GlobalJob(_)) => "global-job",
    }
}

/// Checks a spec and fills in what the user may leave out; resolves the
/// secrets and configs it references against `t`.
fn validate(t: &Tables, spec: &mut ServiceSpec) -> Result<(), Status> {
    let name = name_of(Some(spec)).to_string();
    validate_name("service", &name)?;
    let task = spec
        .task
        .as_mut()
        .ok_or_else(|| Status::invalid_argument("service spec has no task template"))?;
    let container = task.container.as_mut().ok_or_else(|| {
        Status::invalid_argument("service spec has no container spec: an image is required")
    })?;
    if container.image.trim().is_empty() {
        return Err(Status::invalid_argument(
            "an image is required: shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]",
        ));
    }
    for secret in &mut container.secrets {
        let found = t.find::<Secret>(if secret.secret_id.is_empty() {
            &secret.secret_name
        } else {
            &secret.secret_id
        });
        let found = found.map_err(|_| {
            Status::invalid_argument(format!(
                "secret not found: {} (create it first with shoal secret create)",
                if secret.secret_name.is_empty() {
                    &secret.secret_id
                } else {
                    &secret.secret_name
                }
            ))
        })?;
        secret.secret_id = found.id.clone();
        secret.secret_name = found
            .spec
            .as_ref()
            .and_then(|s| s.annotations.as_ref())
            .map(|a| a.name.clone())
            .unwrap_or_default();
    }
    for config in &mut container.configs {
        let found = t.find::<Config>(if config.config_id.is_empty() {
            &config.config_name
        } else {
            &config.config_id
        });
        let found = found.map_err(|_| {
            Status::invalid_argument(format!(
                "config not found: {} (create it first with shoal config create)",
                if config.config_name.is_empty() {
                    &config.config_id
                } else {
                    &config.config_name
                }
            ))
        })?;
        config.config_id = found.id.clone();
        config.config_name = found
            .spec
            .as_ref()
            .and_then(|s| s.annotations.as_ref())
            .map(|a| a.name.clone())
            .unwrap_or_default();
    }
    if let Some(placement) = task.placement.as_ref() {
        crate::scheduler::parse_constraints(&placement.constraints)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
    }
    if spec.mode.is_none() {
        spec.mode = Some(service_spec::Mode::Replicated(
            shoal_proto::objects::ReplicatedService { replicas: 1 },
        ));
    }
    if let Some(service_spec::Mode::ReplicatedJob(job)) = spec.mode.as_mut() {
        if job.total_completions == 0 {
            job.total_completions = job.max_concurrent.max(1);
        }
        if job.max_concurrent == 0 {
            job.max_concurrent = 1;
        }
    }
    bounds::check(spec)
}

/// Published ingress ports must be unique across services (those asked
/// for and those the allocator gave out from the dynamic range).
fn check_ports(t: &Tables, service_id: &str, spec: &ServiceSpec) -> Result<(), Status> {
    let ports = spec.endpoint.as_ref().map_or(&[][..], |e| &e.ports[..]);
    let ingress = |p: &&PortConfig| {
        p.published_port != 0 && p.publish_mode() == port_config::PublishMode::Ingress
    };
    for port in ports.iter().filter(ingress) {
        for other in t.all::<Service>().filter(|s| s.id != service_id) {
            let taken = ingress_ports_of(other).contains(&(port.protocol, port.published_port));
            if taken {
                return Err(Status::invalid_argument(format!(
                    "port '{}' is already in use by service '{}' ({}) as an ingress port",
                    port.published_port,
                    name_of(other.spec.as_ref()),
                    other.id
                )));
            }
        }
    }
    Ok(())
}

fn endpoint_of(spec: &ServiceSpec) -> Option<Endpoint> {
    spec.endpoint.as_ref().map(|e| Endpoint {
        spec: Some(e.clone()),
        ports: e.ports.clone(),
        virtual_ips: Vec::new(),
    })
}

pub async fn service_create(
    ctx: &ManagerContext,
    r: CreateServiceRequest,
) -> Result<CreateServiceResponse, Status> {
    let mut spec = r
        .spec
        .ok_or_else(|| Status::invalid_argument("no service spec given"))?;
    let id = new_id();
    let service = ctx
        .update(|tx| {
            validate(tx.tables(), &mut spec)?;
            check_ports(tx.tables(), &id, &spec)?;
            let service = Service {
                id: id.clone(),
                endpoint: endpoint_of(&spec),
                spec: Some(spec.clone()),
                ..Default::default()
            };
            tx.create(service.clone())?;
            Ok::<_, Status>(service)
        })
        .await?;
    let service = ctx
        .store
        .view(|t| t.get::<Service>(&service.id).cloned())
        .unwrap_or(service);
    Ok(CreateServiceResponse {
        service: Some(without_credentials(service)),
    })
}

pub async fn service_get(
    ctx: &ManagerContext,
    r: GetServiceRequest,
) -> Result<GetServiceResponse, Status> {
    let service = ctx
        .read(|t| t.find::<Service>(&r.service_id).cloned())
        .await??;
    Ok(GetServiceResponse {
        service: Some(without_credentials(service)),
    })
}

/// A service as callers see it: registry credentials (`--with-registry-auth`)
/// stay in the store and go only to the nodes that pull for its tasks.
pub(crate) fn without_credentials(mut service: Service) -> Service {
    for spec in [service.spec.as_mut(), service.previous_spec.as_mut()]
        .into_iter()
        .flatten()
    {
        if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.registry_auth = None;
        }
    }
    service
}

/// A task as callers see it: without its service's registry credentials.
pub(crate) fn task_without_credentials(mut task: Task) -> Task {
    if let Some(c) = task.spec.as_mut().and_then(|t| t.container.as_mut()) {
        c.registry_auth = None;
    }
    task
}

pub async fn service_list(
    ctx: &ManagerContext,
    r: ListServicesRequest,
) -> Result<ListServicesResponse, Status> {
    let f = r.filters.as_ref();
    let (services, statuses) = ctx
        .read(|t| {
            let services: Vec<Service> = t
                .all::<Service>()
                .filter(|s| {
                    let a = s.spec.as_ref().and_then(|x| x.annotations.as_ref());
                    let labels = a.map(|a| a.labels.clone()).unwrap_or_default();
                    matches(f, &s.id, name_of(s.spec.as_ref()), &labels)
                        && f.is_none_or(|f| {
                            f.modes.is_empty()
                                || f.modes.iter().any(|m| m == mode_name(s.spec.as_ref()))
                        })
                })
                .cloned()
                .map(without_credentials)
                .collect();
            let statuses = match r.status {
                true => services.iter().map(|s| service_counts(t, s)).collect(),
                false => Vec::new(),
            };
            (services, statuses)
        })
        .await?;
    Ok(ListServicesResponse { services, statuses })
}

pub async fn service_update(
    ctx: &ManagerContext,
    r: UpdateServiceRequest,
) -> Result<UpdateServiceResponse, Status> {
    let id = ctx
        .store
        .view(|t| t.find::<Service>(&r.service_id).map(|s| s.id.clone()))?;
    ctx.update(|tx| {
        let mut service = tx
            .tables()
            .get::<Service>(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("service {} not found", r.service_id)))?;
        if r.version != 0 {
            service.meta.get_or_insert_default().version = r.version;
        }
        let current = service.spec.clone().unwrap_or_default();
        let mut next = if r.rollback {
            service.previous_spec.clone().ok_or_else(|| {
                Status::failed_precondition(format!(
                    "service {} has no previous spec to roll back to",
                    name_of(Some(&current))
                ))
            })?
        } else {
            r.spec
                .clone()
                .ok_or_else(|| Status::invalid_argument("no service spec given"))?
        };
        if name_of(Some(&next)) != name_of(Some(&current)) {
            return Err(Status::invalid_argument(
                "a service cannot be renamed: create a new service instead",
            ));
        }
        if mode_name(Some(&next)) != mode_name(Some(&current)) {
            return Err(Status::invalid_argument(format!(
                "service mode cannot change (from {} to {}): remove and create the service",
                mode_name(Some(&current)),
                mode_name(Some(&next))
            )));
        }
        // Callers never see the stored credentials, so a spec sent back
        // without them keeps them; `--with-registry-auth` replaces them.
        let kept = current
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .and_then(|c| c.registry_auth.clone());
        if let Some(c) = next.task.as_mut().and_then(|t| t.container.as_mut())
            && c.registry_auth.is_none()
        {
            c.registry_auth = kept;
        }
        validate(tx.tables(), &mut next)?;
        check_ports(tx.tables(), &id, &next)?;
        // Only a change to what tasks run starts a rolling update (a scale
        // does not); asking again resumes a paused one, as in Docker.
        let paused = service.update_status.as_ref().is_some_and(|s| {
            matches!(
                s.state(),
                shoal_proto::objects::update_status::State::Paused
                    | shoal_proto::objects::update_status::State::RollbackPaused
            )
        });
        let rolls = r.rollback || paused || next.task != current.task;
        // The allocator's VIPs and dynamic ports stay; it reconciles them
        // with the new spec (a port published as 0 keeps its number).
        let mut endpoint = service.endpoint.take().unwrap_or_default();
        endpoint.spec = next.endpoint.clone();
        service.endpoint = Some(endpoint);
        service.previous_spec = Some(current);
        service.spec = Some(next);
        if !rolls {
            tx.update(service)?;
            return Ok(());
        }
        let mut status = shoal_proto::objects::UpdateStatus::default();
        if r.rollback {
            status.set_state(shoal_proto::objects::update_status::State::RollbackStarted);
            status.message = "manually requested rollback".into();
        } else {
            status.set_state(shoal_proto::objects::update_status::State::Updating);
            status.message = "update in progress".into();
        }
        status.started_at = Some(std::time::SystemTime::now().into());
        service.update_status = Some(status);
        tx.update(service)?;
        Ok(())
    })
    .await?;
    let service = ctx.store.view(|t| t.get::<Service>(&id).cloned());
    Ok(UpdateServiceResponse {
        service: service.map(without_credentials),
    })
}

pub async fn service_remove(
    ctx: &ManagerContext,
    r: RemoveServiceRequest,
) -> Result<RemoveServiceResponse, Status> {
    ctx.update(|tx| {
        let service = tx.tables().find::<Service>(&r.service_id)?.clone();
        for task in tx.tables().tasks_of_service(&service.id) {
            if task.desired_state() < TaskState::Remove {
                let mut task = task.clone();
                task.set_desired_state(TaskState::Remove);
                tx.update(task)?;
            }
        }
        tx.remove::<Service>(&service.id)?;
        Ok::<_, Status>(())
    })
    .await?;
    Ok(RemoveServiceResponse {})
}

pub async fn task_get(ctx: &ManagerContext, r: GetTaskRequest) -> Result<GetTaskResponse, Status> {
    let task = ctx.read(|t| t.find::<Task>(&r.task_id).cloned()).await??;
    Ok(GetTaskResponse {
        task: Some(task_without_credentials(task)),
    })
}

pub async fn task_list(
    ctx: &ManagerContext,
    r: ListTasksRequest,
) -> Result<ListTasksResponse, Status> {
    let f = r.filters.unwrap_or_default();
    let tasks = ctx
        .read(|t| {
            let candidates: Box<dyn Iterator<Item = &Task>> = if !f.service_ids.is_empty() {
                Box::new(f.service_ids.iter().flat_map(|s| t.tasks_of_service(s)))
            } else if !f.node_ids.is_empty() {
                Box::new(f.node_ids.iter().flat_map(|n| t.tasks_of_node(n)))
            } else {
                Box::new(t.all::<Task>())
            };
            candidates
                .filter(|task| {
                    let name = task.annotations.as_ref().map_or("", |a| a.name.as_str());
                    let any = |list: &[String], pred: &dyn Fn(&str) -> bool| {
                        list.is_empty() || list.iter().any(|x| pred(x))
                    };
                    any(&f.service_ids, &|s| task.service_id == s)
                        && any(&f.node_ids, &|n| task.node_id == n)
                        && any(&f.names, &|n| name == n)
                        && any(&f.name_prefixes, &|p| name.starts_with(p))
                        && any(&f.id_prefixes, &|p| task.id.starts_with(p))
                        && (f.desired_states.is_empty()
                            || f.desired_states.contains(&task.desired_state))
                })
                .cloned()
                .map(task_without_credentials)
                .collect()
        })
        .await?;
    Ok(ListTasksResponse { tasks })
}
