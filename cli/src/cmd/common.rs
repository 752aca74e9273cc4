//! What the cluster-object commands share: the `ls` flags, reaching the
//! control API, naming objects by id, id prefix or name, and the order
//! Docker lists them in.

use std::cmp::Ordering;
use std::io::{BufRead, Write};

use anyhow::bail;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::local::{InfoRequest, local_client::LocalClient};
use tonic::transport::Channel;

use crate::client;
use crate::host::Host;

use super::filter::parse_filter;

/// `-q`, `--filter` and `--format` of every `ls`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (`key=value`).
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: `table` (default), `json`, or a template such as
    /// `{{.Name}}` or `table {{.ID}}\t{{.Name}}`.
    #[arg(long)]
    pub format: Option<String>,
}

/// `--format` of every `inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectFormat {
    /// Format output: `json` (default) or a template such as `{{.Spec.Name}}`.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// A client of the control API through the local daemon.
pub struct Api {
    /// The cluster API.
    pub control: ControlClient<Channel>,
    channel: Channel,
}

/// The daemon's node-local API (images, volumes, swarm membership).
pub async fn local(host: &Host) -> anyhow::Result<LocalClient<Channel>> {
    Ok(LocalClient::new(client::connect(host).await?))
}

impl Api {
    /// Connects to the daemon at `host`.
    pub async fn connect(host: &Host) -> anyhow::Result<Api> {
        let channel = client::connect(host).await?;
        Ok(Api {
            control: ControlClient::new(channel.clone()),
            channel,
        })
    }

    /// The connection to the daemon, for the other APIs it serves.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The id of the node the daemon runs, empty outside a swarm.
    pub async fn local_node_id(&self) -> anyhow::Result<String> {
        let info = LocalClient::new(self.channel.clone())
            .info(InfoRequest { brief: true })
            .await
            .map_err(client::status_error)?
            .into_inner();
        Ok(info.swarm.map(|s| s.node_id).unwrap_or_default())
    }
}

/// Finds the one object `arg` names among `(id, name)` pairs: a full id,
/// then a full name, then a unique id prefix, as Docker resolves them.
pub fn resolve<'a>(
    kind: &str,
    arg: &str,
    objects: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> anyhow::Result<String> {
    if arg.is_empty() {
        bail!("{kind} name or ID must not be empty");
    }
    if let Some((id, _)) = objects.clone().into_iter().find(|(id, _)| *id == arg) {
        return Ok(id.to_string());
    }
    let by_name: Vec<&str> = objects
        .clone()
        .into_iter()
        .filter(|(_, name)| *name == arg)
        .map(|(id, _)| id)
        .collect();
    let by_prefix: Vec<&str> = objects
        .into_iter()
        .filter(|(id, _)| id.starts_with(arg))
        .map(|(id, _)| id)
        .collect();
    let mut found = if by_name.is_empty() {
        by_prefix
    } else {
        by_name
    };
    // An object may be listed under several names (a node's hostname and
    // its name): count it once.
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => bail!("No such {kind}: {arg}"),
        many => bail!("{kind} {arg} is ambiguous ({} matches found)", many.len()),
    }
}

/// Asks `question` on the terminal; true only for "y" or "yes".
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim().to_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// The errors of a command that goes on past failures, reported together
/// at the end, as `docker ... rm a b c` does.
#[derive(Debug, Default)]
pub struct Failures(Vec<String>);

impl Failures {
    /// Keeps the error of `result`, if any; returns the value otherwise.
    pub fn note<T>(&mut self, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(err) => {
                self.0.push(format!("{err:#}"));
                None
            }
        }
    }

    /// Fails with every error kept, one per line.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            bail!("{}", self.0.join("\n"))
        }
    }
}

/// Natural order ("node2" before "node10"), as Docker sorts names.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJS: [(&str, &str); 3] = [("abc111", "web"), ("abd222", "api"), ("xyz333", "abc")];

    #[test]
    fn resolves_ids_names_and_prefixes() {
        assert_eq!(resolve("secret", "abc111", OBJS).unwrap(), "abc111");
        assert_eq!(resolve("secret", "web", OBJS).unwrap(), "abc111");
        // A full name wins over an id prefix.
        assert_eq!(resolve("secret", "abc", OBJS).unwrap(), "xyz333");
        assert_eq!(resolve("secret", "abd", OBJS).unwrap(), "abd222");
        let err = resolve("secret", "ab", OBJS).unwrap_err().to_string();
        assert_eq!(err, "secret ab is ambiguous (2 matches found)");
        let err = resolve("secret", "nope", OBJS).unwrap_err().to_string();
        assert_eq!(err, "No such secret: nope");
    }

    #[test]
    fn natural_order() {
        let mut names = vec!["node10", "node2", "node1", "alpha", "node02"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["alpha", "node1", "node2", "node02", "node10"]);
    }
}
