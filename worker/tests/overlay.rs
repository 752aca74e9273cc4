//! The overlay data plane on a real kernel (needs root): two "nodes" are
//! two namespaces on a veth underlay in 198.18.0.0/24, each with its own
//! `Overlay`; "tasks" are namespaces made with `ip netns add`. `ip` and
//! `ping` only check what the overlay did.

mod common;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};

use shoal_proto::dispatcher::{EndpointAddress, EndpointTask};
use shoal_proto::objects::{Driver, IpamConfig, IpamOptions, Network, NetworkSpec};
use shoal_worker::net::overlay::plan::VXLAN_ID_OPTION;
use shoal_worker::net::overlay::{MESH_HOST_ADDR, MESH_SANDBOX_ADDR};
use shoal_worker::net::{NetworkView, Overlay, attachment};

const NODE_A: &str = "198.18.0.1";
const NODE_B: &str = "198.18.0.2";
const PORT: u16 = 4789;

/// Runs `ip` (or any command) and returns its output.
fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs `ip` with `args`, which must succeed.
fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(cmd: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(cmd, args).stdout).into_owned()
}

/// Whether `ns` reaches `addr` (one retry: the first ping may race a
/// neighbour lookup).
fn pings(ns: &str, addr: &str) -> bool {
    (0..2).any(|_| {
        run("ip", &["netns", "exec", ns, "ping", "-c1", "-W1", addr])
            .status
            .success()
    })
}

/// Every namespace whose name starts with the lab's base, our overlays'
/// included; deleted when the lab drops, even when the test fails.
struct Lab {
    base: String,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            base: format!("o{:04}", std::process::id() % 10_000),
        };
        lab.clean();
        lab
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.base)
    }

    fn namespaces(&self, prefix: &str) -> Vec<String> {
        stdout("ip", &["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    fn clean(&self) {
        for ns in self.namespaces(&self.base) {
            let _ = run("ip", &["netns", "del", &ns]);
        }
    }

    /// Two nodes joined by a veth pair, addresses `NODE_A` and `NODE_B`.
    fn underlay(&self) {
        let (a, b) = (self.ns("nodea"), self.ns("nodeb"));
        let (ua, ub) = (format!("{}ua", self.base), format!("{}ub", self.base));
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        ip(&[
            "link", "add", &ua, "netns", &a, "type", "veth", "peer", "name", &ub, "netns", &b,
        ]);
        for (ns, dev, addr) in [(&a, &ua, NODE_A), (&b, &ub, NODE_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
    }

    /// A task namespace, created.
    fn task(&self, name: &str) -> PathBuf {
        ip(&["netns", "add", &self.ns(name)]);
        self.task_path(name)
    }

    fn task_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.ns(name))
    }

    fn overlay(&self, node: &str, suffix: &str, addr: &str) -> Overlay {
        let home = File::open(format!("/run/netns/{}", self.ns(node))).expect("node namespace");
        Overlay::with_home(
            &format!("{}{suffix}", self.base),
            addr.parse().expect("address"),
            PORT,
            home,
        )
        .expect("overlay")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.clean();
    }
}

fn network(id: &str, vni: u32, subnet: &str, ingress: bool) -> Network {
    let ipam = IpamOptions {
        driver: None,
        configs: vec![IpamConfig {
            subnet: subnet.into(),
            range: String::new(),
            gateway: String::new(),
        }],
    };
    Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            ingress,
            ..Default::default()
        }),
        driver_state: Some(Driver {
            name: "overlay".into(),
            options: [(VXLAN_ID_OPTION.to_string(), vni.to_string())].into(),
        }),
        ipam: Some(ipam),
        ..Default::default()
    }
}

fn endpoint(id: &str, node: &str, network_id: &str, address: &str) -> EndpointTask {
    EndpointTask {
        task_id: id.into(),
        node_addr: node.into(),
        addresses: vec![EndpointAddress {
            network_id: network_id.into(),
            address: address.into(),
            aliases: vec![],
        }],
        ready: true,
        ..Default::default()
    }
}

/// The cluster as both nodes see it: networks, tasks, sandboxes.
#[derive(Clone, Default)]
struct Cluster {
    networks: Vec<Network>,
    tasks: Vec<EndpointTask>,
    sandboxes: Vec<EndpointTask>,
}

impl Cluster {
    fn view(&self, node: &str) -> NetworkView {
        NetworkView {
            networks: self.networks.clone(),
            tasks: self.tasks.clone(),
            node_addr: node.into(),
            data_path_port: u32::from(PORT),
            ingress_sandboxes: self.sandboxes.clone(),
            ..Default::default()
        }
    }

    fn without_task(&self, id: &str) -> Cluster {
        let mut c = self.clone();
        c.tasks.retain(|t| t.task_id != id);
        c
    }

    fn without_network(&self, id: &str) -> Cluster {
        let mut c = self.clone();
        c.networks.retain(|n| n.id != id);
        c.tasks
            .retain(|t| t.addresses.iter().all(|a| a.network_id != id));
        c
    }
}

async fn sync(a: &mut Overlay, b: &mut Overlay, cluster: &Cluster) {
    a.sync(&cluster.view(NODE_A)).await.expect("sync node a");
    b.sync(&cluster.view(NODE_B)).await.expect("sync node b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_two_nodes_reach_each_other_over_vxlan() {
    if !common::root(module_path!()) {
        return;
    }
    let lab = Lab::new();
    lab.underlay();
    let mut a = lab.overlay("nodea", "a", NODE_A);
    let mut b = lab.overlay("nodeb", "b", NODE_B);
    let (ta1, tb1, ta2, tb2) = (lab.ns("ta1"), lab.ns("tb1"), lab.ns("ta2"), lab.ns("tb2"));

    // One network, a task on each node.
    let mut cluster = Cluster {
        networks: vec![network("net-one", 4097, "10.0.9.0/24", false)],
        tasks: vec![
            endpoint("task-a1", NODE_A, "net-one", "10.0.9.5/24"),
            endpoint("task-b1", NODE_B, "net-one", "10.0.9.6/24"),
        ],
        sandboxes: vec![],
    };
    sync(&mut a, &mut b, &cluster).await;
    let att = |net: &str, cidr: &str| vec![attachment(net, cidr).expect("cidr")];
    a.attach("task-a1", &lab.task("ta1"), &att("net-one", "10.0.9.5/24"))
        .await
        .expect("attach a1");
    b.attach("task-b1", &lab.task("tb1"), &att("net-one", "10.0.9.6/24"))
        .await
        .expect("attach b1");
    assert!(pings(&ta1, "10.0.9.6"), "a1 → b1 across the VXLAN");
    assert!(pings(&tb1, "10.0.9.5"), "b1 → a1 across the VXLAN");
    let link = stdout("ip", &["-n", &ta1, "-br", "link", "show", "eth0"]);
    assert!(link.contains("02:42:0a:00:09:05"), "{link}");

    // Idempotent: again, and again after a "restart" (a fresh Overlay).
    sync(&mut a, &mut b, &cluster).await;
    a.attach(
        "task-a1",
        &lab.task_path("ta1"),
        &att("net-one", "10.0.9.5/24"),
    )
    .await
    .expect("attach a1 again");
    let mut a = lab.overlay("nodea", "a", NODE_A);
    a.attach(
        "task-a1",
        &lab.task_path("ta1"),
        &att("net-one", "10.0.9.5/24"),
    )
    .await
    .expect("attach a1 after restart");
    sync(&mut a, &mut b, &cluster).await;
    assert!(pings(&ta1, "10.0.9.6"), "a1 → b1 after the restart");

    // A second network with the same subnet: its own namespaces, and the
    // same address 10.0.9.5 on node A twice.
    cluster
        .networks
        .push(network("net-two", 4098, "10.0.9.0/24", false));
    cluster
        .tasks
        .push(endpoint("task-a2", NODE_A, "net-two", "10.0.9.5/24"));
    cluster
        .tasks
        .push(endpoint("task-b2", NODE_B, "net-two", "10.0.9.8/24"));
    sync(&mut a, &mut b, &cluster).await;
    a.attach("task-a2", &lab.task("ta2"), &att("net-two", "10.0.9.5/24"))
        .await
        .expect("attach a2");
    b.attach("task-b2", &lab.task("tb2"), &att("net-two", "10.0.9.8/24"))
        .await
        .expect("attach b2");
    assert!(pings(&ta2, "10.0.9.8"), "a2 → b2 on the second network");
    assert!(pings(&tb2, "10.0.9.5"), "b2 → a2 on the second network");
    assert!(pings(&ta1, "10.0.9.6"), "a1 → b1 still");
    assert!(!pings(&ta1, "10.0.9.8"), "the networks are isolated");
    assert!(!pings(&ta2, "10.0.9.6"), "the networks are isolated");

    // b1 leaves the view: node A forgets it.
    sync(&mut a, &mut b, &cluster.without_task("task-b1")).await;
    assert!(!pings(&ta1, "10.0.9.6"), "b1 left the view");
    let fdb = stdout(
        "ip",
        &[
            "netns",
            "exec",
            &a.network_ns_name("net-one"),
            "bridge",
            "fdb",
        ],
    );
    let static_b1 = |l: &&str| l.contains("02:42:0a:00:09:06") && l.contains("dst");
    assert!(!fdb.lines().any(|l| static_b1(&l)), "{fdb}");
    sync(&mut a, &mut b, &cluster).await;
    assert!(pings(&ta1, "10.0.9.6"), "b1 is back");
    b.detach("task-b1").await.expect("detach b1");
    assert!(!pings(&ta1, "10.0.9.6"), "b1 was detached");
    let gone = stdout("ip", &["-n", &tb1, "-br", "link"]);
    assert!(!gone.contains("eth0"), "{gone}");
    b.detach("task-b1").await.expect("detach b1 twice");

    // net-two leaves the view: kept on each node while its task is
    // attached there, removed once it is not.
    let one = cluster.without_network("net-two");
    sync(&mut a, &mut b, &one).await;
    let (a_two, b_two) = (a.network_ns_name("net-two"), b.network_ns_name("net-two"));
    assert_eq!(lab.namespaces(&a_two).len(), 1, "still used by a2");
    assert_eq!(lab.namespaces(&b_two).len(), 1, "still used by b2");
    a.detach("task-a2").await.expect("detach a2");
    sync(&mut a, &mut b, &one).await;
    assert!(lab.namespaces(&a_two).is_empty(), "removed once unused");
    assert_eq!(lab.namespaces(&b_two).len(), 1, "still used by b2");
    assert!(!pings(&tb2, "10.0.9.5"), "a2 is unplugged");
    b.detach("task-b2").await.expect("detach b2");
    sync(&mut a, &mut b, &one).await;
    assert!(lab.namespaces(&b_two).is_empty(), "removed once unused");

    // The routing-mesh sandboxes on the ingress network.
    let mut mesh = one.clone();
    mesh.networks
        .push(network("ingress", 4099, "10.255.0.0/16", true));
    mesh.sandboxes = vec![
        endpoint("sbox-a", NODE_A, "ingress", "10.255.0.2/16"),
        endpoint("sbox-b", NODE_B, "ingress", "10.255.0.3/16"),
    ];
    sync(&mut a, &mut b, &mesh).await;
    let sa = a
        .sandbox(&attachment("ingress", "10.255.0.2/16").expect("cidr"))
        .await
        .expect("sandbox a");
    let sb = b
        .sandbox(&attachment("ingress", "10.255.0.3/16").expect("cidr"))
        .await
        .expect("sandbox b");
    let _ = a
        .sandbox(&attachment("ingress", "10.255.0.2/16").expect("cidr"))
        .await
        .expect("sandbox a again");
    let name = |p: &PathBuf| p.file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        pings(&name(&sa.netns), "10.255.0.3"),
        "sandbox a → sandbox b"
    );
    assert!(
        pings(&name(&sb.netns), "10.255.0.2"),
        "sandbox b → sandbox a"
    );
    assert!(
        pings(&lab.ns("nodea"), &MESH_SANDBOX_ADDR.to_string()),
        "node a → its sandbox"
    );
    assert!(
        pings(&name(&sa.netns), &MESH_HOST_ADDR.to_string()),
        "sandbox a → node a"
    );
    let fwd = stdout(
        "ip",
        &[
            "netns",
            "exec",
            &name(&sa.netns),
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    );
    assert_eq!(fwd.trim(), "1");
    assert_eq!(sa.ingress_addr, Ipv4Addr::new(10, 255, 0, 2));

    // Leaving the swarm: nothing of either overlay is left.
    a.remove_all().await.expect("remove all a");
    b.remove_all().await.expect("remove all b");
    for (ov, node) in [(&a, "nodea"), (&b, "nodeb")] {
        let left = lab.namespaces(&format!("{}-", ov.prefix()));
        assert!(left.is_empty(), "left behind: {left:?}");
        let links = stdout("ip", &["-n", &lab.ns(node), "-br", "link"]);
        assert_eq!(
            links.lines().count(),
            2,
            "only lo and the underlay: {links}"
        );
    }
    for task in [&ta1, &tb1, &ta2, &tb2] {
        let links = stdout("ip", &["-n", task, "-br", "link"]);
        assert_eq!(links.lines().count(), 1, "only lo in {task}: {links}");
    }
}
