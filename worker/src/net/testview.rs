//! Small `NetworkView` builders for the data plane's unit tests.

use shoal_proto::dispatcher::{AliasList, EndpointAddress, EndpointService, EndpointTask};
use shoal_proto::objects::{Network, NetworkSpec, VirtualIp};

use crate::net::NetworkView;

/// A view with networks `front`, `back` and `ingress`, this node at 198.18.0.1.
pub fn view() -> NetworkView {
    let net = |id: &str, ingress: bool| Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            ingress,
            ..Default::default()
        }),
        ..Default::default()
    };
    NetworkView {
        networks: vec![
            net("front", false),
            net("back", false),
            net("ingress", true),
        ],
        node_addr: "198.18.0.1".into(),
        ..Default::default()
    }
}

/// A VIP service on one network (no VIP when `vip` is empty), aliased
/// `<name>-alias` there.
pub fn service(id: &str, name: &str, net: &str, vip: &str) -> EndpointService {
    EndpointService {
        service_id: id.into(),
        name: name.into(),
        virtual_ips: if vip.is_empty() {
            vec![]
        } else {
            vec![VirtualIp {
                network_id: net.into(),
                addr: vip.into(),
            }]
        },
        aliases: [(
            net.to_string(),
            AliasList {
                aliases: vec![format!("{name}-alias")],
            },
        )]
        .into(),
        ..Default::default()
    }
}

/// A task of `service` on one network, on this node.
pub fn task(
    id: &str,
    service: &str,
    name: &str,
    net: &str,
    cidr: &str,
    ready: bool,
) -> EndpointTask {
    EndpointTask {
        task_id: id.into(),
        service_id: service.into(),
        node_id: "n1".into(),
        node_addr: "198.18.0.1".into(),
        addresses: vec![EndpointAddress {
            network_id: net.into(),
            address: cidr.into(),
            aliases: vec![],
        }],
        ready,
        name: name.into(),
    }
}
