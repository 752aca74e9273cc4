//! Creating secrets, configs and networks together, in ONE store
//! transaction (one Raft proposal): either all of them exist afterwards or
//! none does. `stack deploy` uses it, so a deploy that fails validation or
//! meets a name conflict leaves nothing half-made behind.
//!
//! Why it is shaped so: validation is the same as the single-object calls
//! (the helpers in `resources`), done first without the store so a bad
//! spec fails fast; then every object is staged in one [`Tx`], where name
//! conflicts (with stored objects and within the batch) are found. Every
//! error names the offending object by kind, position and name.

use std::collections::HashSet;

use shoal_proto::control::{BatchRequest, BatchResponse};
use shoal_proto::objects::{Annotations, Config, Network, Secret};
use tonic::Status;

use super::resources::{check_ingress, is_ingress, new_config, new_network, new_secret};
use crate::context::ManagerContext;
use crate::store::Tx;

/// Most objects one batch may create: a stack is tens, not thousands; a
/// bound keeps one Raft entry (and its fsync) reasonable.
pub const MAX_BATCH_OBJECTS: usize = 1000;

/// Serves `Batch` on the leader.
pub async fn batch(ctx: &ManagerContext, r: BatchRequest) -> Result<BatchResponse, Status> {
    let existing = r.existing_secrets.clone();
    let prepared = Prepared::validate(r)?;
    let response = prepared.ids();
    ctx.update(|tx| {
        same_secrets(tx, &existing)?;
        prepared.stage(tx)
    })
    .await?;
    Ok(response)
}

/// Checks that each stored secret named in `wanted` holds the same data.
fn same_secrets(tx: &Tx<'_>, wanted: &[shoal_proto::objects::SecretSpec]) -> Result<(), Status> {
    for spec in wanted {
        let name = name_of(spec.annotations.as_ref());
        let Some(stored) = tx.tables().get_by_name::<Secret>(name) else {
            return Err(Status::not_found(format!("secret {name} not found")));
        };
        let data = stored.spec.as_ref().map_or(&[][..], |s| &s.data[..]);
        // Constant time: the answer must not leak how much of it matched.
        let same = data.len() == spec.data.len()
            && bool::from(subtle::ConstantTimeEq::ct_eq(data, &spec.data[..]));
        if !same {
            return Err(Status::failed_precondition(format!(
                "secret {name}: its data changed, but secrets are immutable in swarm: give it a new name (e.g. {name}_v2), or remove what uses it first"
            )));
        }
    }
    Ok(())
}

/// Validated objects with fresh ids, not yet in any transaction.
#[derive(Debug)]
struct Prepared {
    secrets: Vec<Secret>,
    configs: Vec<Config>,
    networks: Vec<Network>,
}

/// Prefixes an error with the object it is about, keeping its code.
fn about(kind: &str, index: usize, name: &str, e: Status) -> Status {
    Status::new(
        e.code(),
        format!("{kind} #{index} ({name:?}) in the batch: {}", e.message()),
    )
}

fn name_of(a: Option<&Annotations>) -> &str {
    a.map_or("", |a| a.name.as_str())
}

impl Prepared {
    /// Checks every spec as the single-object calls do.
    fn validate(r: BatchRequest) -> Result<Prepared, Status> {
        let count = r.secrets.len() + r.configs.len() + r.networks.len();
        if count > MAX_BATCH_OBJECTS {
            return Err(Status::invalid_argument(format!(
                "the batch holds {count} objects, over the limit of {MAX_BATCH_OBJECTS}: split it"
            )));
        }
        let secrets = r
            .secrets
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = name_of(spec.annotations.as_ref()).to_string();
                new_secret(spec).map_err(|e| about("secret", i, &name, e))
            })
            .collect::<Result<_, _>>()?;
        let configs = r
            .configs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = name_of(spec.annotations.as_ref()).to_string();
                new_config(spec).map_err(|e| about("config", i, &name, e))
            })
            .collect::<Result<_, _>>()?;
        let networks = r
            .networks
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = name_of(spec.annotations.as_ref()).to_string();
                new_network(spec).map_err(|e| about("network", i, &name, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            secrets,
            configs,
            networks,
        })
    }

    /// The ids the objects will have, in request order.
    fn ids(&self) -> BatchResponse {
        BatchResponse {
            secret_ids: self.secrets.iter().map(|x| x.id.clone()).collect(),
            config_ids: self.configs.iter().map(|x| x.id.clone()).collect(),
            network_ids: self.networks.iter().map(|x| x.id.clone()).collect(),
        }
    }

    /// Records every create in `tx`; fails on the first conflict.
    fn stage(self, tx: &mut Tx<'_>) -> Result<(), Status> {
        let mut seen = HashSet::new();
        for (i, secret) in self.secrets.into_iter().enumerate() {
            let name = name_of(secret.spec.as_ref().and_then(|s| s.annotations.as_ref()));
            let name = name.to_string();
            once(&mut seen, "secret", i, &name)?;
            tx.create(secret)
                .map_err(|e| about("secret", i, &name, e.into()))?;
        }
        for (i, config) in self.configs.into_iter().enumerate() {
            let name = name_of(config.spec.as_ref().and_then(|s| s.annotations.as_ref()));
            let name = name.to_string();
            once(&mut seen, "config", i, &name)?;
            tx.create(config)
                .map_err(|e| about("config", i, &name, e.into()))?;
        }
        let mut ingress = false;
        for (i, network) in self.networks.into_iter().enumerate() {
            let name = name_of(network.spec.as_ref().and_then(|s| s.annotations.as_ref()));
            let name = name.to_string();
            once(&mut seen, "network", i, &name)?;
            let check = if ingress && is_ingress(&network) {
                Err(Status::invalid_argument(
                    "the batch holds more than one ingress network; there can be only one",
                ))
            } else {
                check_ingress(tx.tables(), &network)
            };
            check.map_err(|e| about("network", i, &name, e))?;
            ingress |= is_ingress(&network);
            tx.create(network)
                .map_err(|e| about("network", i, &name, e.into()))?;
        }
        Ok(())
    }
}

/// Refuses a name given twice for one kind within the batch.
fn once(
    seen: &mut HashSet<(&'static str, String)>,
    kind: &'static str,
    index: usize,
    name: &str,
) -> Result<(), Status> {
    if seen.insert((kind, name.to_string())) {
        Ok(())
    } else {
        Err(about(
            kind,
            index,
            name,
            Status::already_exists(format!(
                "{kind} name {name:?} is given more than once in the batch"
            )),
        ))
    }
}

#[cfg(test)]
mod tests;
