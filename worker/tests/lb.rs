//! The data plane's load balancing and DNS against real namespaces (root
//! only): a bridge namespace as the network, three task namespaces running
//! a tiny HTTP server answering its own name, a client task; and for the
//! routing mesh a node namespace, its sandbox, an ingress bridge and an
//! outside client. Everything is built with `ip` and removed on drop.

mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use shoal_proto::dispatcher::{
    AliasList, EndpointAddress, EndpointService, EndpointTask, NetworkView,
};
use shoal_proto::objects::{Network, NetworkSpec, PortConfig, VirtualIp};
use shoal_worker::net::dns::{self, DnsServer};
use shoal_worker::net::lb::{self, LoadBalancer, Nftables};
use shoal_worker::net::nsenter::in_netns;

fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces and servers of one test, removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    stop: Arc<AtomicBool>,
}

impl Lab {
    fn new(tag: &str) -> Self {
        Lab {
            prefix: format!("sl{}{tag}", std::process::id() % 10000),
            namespaces: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn ns(&mut self, name: &str) -> String {
        let full = format!("{}{name}", self.prefix);
        ip(&format!("netns add {full}"));
        self.namespaces.push(full.clone());
        ip(&format!("-n {full} link set lo up"));
        full
    }

    fn path(&self, ns: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{ns}"))
    }

    /// A bridge `br0` inside a fresh namespace.
    fn network(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        ip(&format!("-n {ns} link add br0 type bridge"));
        ip(&format!("-n {ns} link set br0 up"));
        ns
    }

    /// Plugs `ns` into the bridge of `net` as `dev` with `cidr`.
    fn plug(&self, ns: &str, dev: &str, net: &str, cidr: &str) {
        let peer = format!("{}{dev}", &ns[ns.len().saturating_sub(6)..]);
        ip(&format!(
            "-n {ns} link add {dev} type veth peer name {peer} netns {net}"
        ));
        ip(&format!("-n {ns} addr add {cidr} dev {dev}"));
        ip(&format!("-n {ns} link set {dev} up"));
        ip(&format!("-n {net} link set {peer} master br0 up"));
    }

    /// An HTTP server on port 80 in `ns`, answering `name`.
    fn serve(&self, ns: &str, name: &str) {
        let listener = in_netns(&self.path(ns), || {
            let l = TcpListener::bind("0.0.0.0:80")?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .expect("bind the http server");
        let (stop, name) = (self.stop.clone(), name.to_string());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let mut buf = [0u8; 512];
                        let _ = s.read(&mut buf);
                        let _ = write!(
                            s,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                            name.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// One HTTP GET from inside `ns`: the body.
    fn get(&self, ns: &str, to: SocketAddr) -> std::io::Result<String> {
        in_netns(&self.path(ns), move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
        })
    }

    /// Which backends `n` requests reach.
    fn spread(&self, ns: &str, to: &str, n: usize) -> BTreeSet<String> {
        let to: SocketAddr = to.parse().unwrap();
        (0..n)
            .map(|_| {
                self.get(ns, to)
                    .unwrap_or_else(|e| panic!("GET {to} from {ns}: {e}"))
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn network(id: &str, ingress: bool) -> Network {
    Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            ingress,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(n: u8, service: &str, addrs: &[(&str, String)], ready: bool) -> EndpointTask {
    EndpointTask {
        task_id: format!("t{n}"),
        service_id: service.into(),
        node_id: "node1".into(),
        node_addr: "198.18.0.1".into(),
        addresses: addrs
            .iter()
            .map(|(net, a)| EndpointAddress {
                network_id: net.to_string(),
                address: a.clone(),
                aliases: vec![],
            })
            .collect(),
        ready,
        name: format!("{service}.{n}.t{n}"),
    }
}

/// `web` (VIP 10.0.5.2 on front, 10.0.9.2 on ingress, 8080→80) with
/// tasks 10.0.5.11-13 / 10.0.9.11-13, the last one `ready` or not, and a
/// client task 10.0.5.20 of service `client`.
fn view(third_ready: bool) -> NetworkView {
    let web = EndpointService {
        service_id: "web".into(),
        name: "web".into(),
        virtual_ips: vec![
            VirtualIp {
                network_id: "front".into(),
                addr: "10.0.5.2/24".into(),
            },
            VirtualIp {
                network_id: "ingress".into(),
                addr: "10.0.9.2/24".into(),
            },
        ],
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        }],
        aliases: [(
            "front".to_string(),
            AliasList {
                aliases: vec!["www".into()],
            },
        )]
        .into(),
        ..Default::default()
    };
    let client = EndpointService {
        service_id: "client".into(),
        name: "client".into(),
        virtual_ips: vec![VirtualIp {
            network_id: "front".into(),
            addr: "10.0.5.3/24".into(),
        }],
        ..Default::default()
    };
    let hidden = EndpointService {
        service_id: "db".into(),
        name: "db".into(),
        virtual_ips: vec![VirtualIp {
            network_id: "back".into(),
            addr: "10.0.6.2/24".into(),
        }],
        ..Default::default()
    };
    let mut tasks: Vec<EndpointTask> = (1..=3)
        .map(|n| {
            let addrs = [
                ("front", format!("10.0.5.1{n}/24")),
                ("ingress", format!("10.0.9.1{n}/24")),
            ];
            task(n, "web", &addrs, n != 3 || third_ready)
        })
        .collect();
    tasks.push(task(4, "client", &[("front", "10.0.5.20/24".into())], true));
    tasks.push(task(5, "db", &[("back", "10.0.6.11/24".into())], true));
    NetworkView {
        networks: vec![
            network("front", false),
            network("back", false),
            network("ingress", true),
        ],
        tasks,
        services: vec![web, client, hidden],
        node_addr: "198.18.0.1".into(),
        ingress_sandboxes: vec![EndpointTask {
            node_addr: "198.18.0.1".into(),
            addresses: vec![EndpointAddress {
                network_id: "ingress".into(),
                address: "10.0.9.250/24".into(),
                aliases: vec![],
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The front network with three web tasks (on ingress too when `ingress`
/// names a bridge namespace) and a client. Returns the client namespace.
fn front(lab: &mut Lab, ingress: Option<&str>) -> (Vec<String>, String) {
    let net = lab.network("net");
    let mut tasks = Vec::new();
    for n in 1..=3 {
        let t = lab.ns(&format!("t{n}"));
        lab.plug(&t, "eth0", &net, &format!("10.0.5.1{n}/24"));
        if let Some(ing) = ingress {
            lab.plug(&t, "eth1", ing, &format!("10.0.9.1{n}/24"));
        }
        lab.serve(&t, &format!("web.{n}"));
        tasks.push(t);
    }
    let client = lab.ns("cl");
    lab.plug(&client, "eth0", &net, "10.0.5.20/24");
    (tasks, client)
}

#[test]
fn vip_balances_over_ready_tasks() {
    if !common::root(module_path!()) {
        return;
    }
    let mut lab = Lab::new("v");
    let (_tasks, client) = front(&mut lab, None);
    let nets = vec!["front".to_string()];
    let lb = Nftables;
    lb.sync_task(&lab.path(&client), &lb::vip_plan(&view(true), &nets))
        .expect("sync");
    let seen = lab.spread(&client, "10.0.5.2:80", 30);
    assert!(seen.len() >= 2, "the VIP reached only {seen:?}");

    // web.3 stops being ready: out of rotation on the next sync.
    lb.sync_task(&lab.path(&client), &lb::vip_plan(&view(false), &nets))
        .expect("resync");
    let seen = lab.spread(&client, "10.0.5.2:80", 30);
    assert!(
        !seen.contains("web.3"),
        "a task that is not ready still answers: {seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");

    // A VIP with no ready task refuses at once.
    let refused = lab.get(&client, "10.0.5.3:80".parse().unwrap());
    assert!(refused.is_err());
    lb.clear(&lab.path(&client)).expect("clear");
}

/// A query from inside `ns` to 127.0.0.11 over UDP (or TCP).
fn query(lab: &Lab, ns: &str, name: &str, tcp: bool) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.metadata.recursion_desired = true;
    let bytes = m.to_vec().unwrap();
    let reply = in_netns(&lab.path(ns), move || {
        let to: SocketAddr = "127.0.0.11:53".parse().unwrap();
        if tcp {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(&(bytes.len() as u16).to_be_bytes())?;
            s.write_all(&bytes)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf)?;
            Ok(buf)
        } else {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.send_to(&bytes, to)?;
            let mut buf = vec![0u8; 4096];
            let n = s.recv(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        }
    })
    .unwrap_or_else(|e| panic!("dns query {name}: {e}"));
    Message::from_vec(&reply).unwrap()
}

fn addrs(m: &Message) -> BTreeSet<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_cluster_names_inside_the_task() {
    if !common::root(module_path!()) {
        return;
    }
    let mut lab = Lab::new("d");
    let client = lab.ns("cl");
    let nets = vec!["front".to_string()];
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(dns::table(&view(true), &nets)));
    // No upstreams: forwarded names fail fast with SERVFAIL.
    let _server = DnsServer::start(&lab.path(&client), rx, vec![])
        .await
        .expect("start dns");

    let (lab, client) = tokio::task::spawn_blocking(move || {
        let web = query(&lab, &client, "web", false);
        assert_eq!(web.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&web), ["10.0.5.2".parse().unwrap()].into());
        assert_eq!(
            addrs(&query(&lab, &client, "www.", true)),
            ["10.0.5.2".parse().unwrap()].into()
        );
        let tasks = query(&lab, &client, "tasks.web", false);
        let want: BTreeSet<Ipv4Addr> = (1..=3)
            .map(|n| format!("10.0.5.1{n}").parse().unwrap())
            .collect();
        assert_eq!(addrs(&tasks), want);
        assert_eq!(
            addrs(&query(&lab, &client, "web.2.t2", false)),
            ["10.0.5.12".parse().unwrap()].into()
        );
        for hidden in ["db", "tasks.db", "nosuch"] {
            let m = query(&lab, &client, hidden, false);
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{hidden}");
        }
        let started = std::time::Instant::now();
        let m = query(&lab, &client, "example.com", false);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(started.elapsed() < Duration::from_secs(2));
        (lab, client)
    })
    .await
    .unwrap();

    // The table is swapped in place: web.3 not ready leaves tasks.web.
    tx.send_replace(Arc::new(dns::table(&view(false), &nets)));
    tokio::task::spawn_blocking(move || {
        assert_eq!(addrs(&query(&lab, &client, "tasks.web", false)).len(), 2);
        drop(lab);
    })
    .await
    .unwrap();
}

#[test]
fn routing_mesh_balances_published_ports() {
    if !common::root(module_path!()) {
        return;
    }
    let mut lab = Lab::new("m");
    let ingress = lab.network("ing");
    let (_tasks, _client) = front(&mut lab, Some(&ingress));
    // The node, an outside client on its underlay, and the sandbox.
    let node = lab.ns("node");
    let ext = lab.ns("ext");
    ip(&format!(
        "-n {node} link add eth0 type veth peer name eth0 netns {ext}"
    ));
    ip(&format!("-n {node} addr add 198.18.0.1/24 dev eth0"));
    ip(&format!("-n {ext} addr add 198.18.0.2/24 dev eth0"));
    ip(&format!("-n {node} link set eth0 up"));
    ip(&format!("-n {ext} link set eth0 up"));
    let sandbox = lab.ns("sb");
    lab.plug(&sandbox, "eth0", &ingress, "10.0.9.250/24");
    ip(&format!(
        "-n {node} link add sbx type veth peer name veth0 netns {sandbox}"
    ));
    ip(&format!("-n {node} addr add 169.254.250.1/30 dev sbx"));
    ip(&format!("-n {sandbox} addr add 169.254.250.2/30 dev veth0"));
    ip(&format!("-n {node} link set sbx up"));
    ip(&format!("-n {sandbox} link set veth0 up"));
    ip(&format!("-n {sandbox} route add default via 169.254.250.1"));

    let lb = Nftables;
    let sync = |v: &NetworkView| {
        lb.sync_node(&lab.path(&node), &lb::node_plan(v))
            .expect("sync node");
        lb.sync_sandbox(&lab.path(&sandbox), &lb::mesh_plan(v))
            .expect("sync sandbox");
    };
    sync(&view(true));
    let seen = lab.spread(&ext, "198.18.0.1:8080", 30);
    assert!(seen.len() >= 2, "the mesh reached only {seen:?}");
    // From the node itself too.
    let local = lab.spread(&node, "198.18.0.1:8080", 10);
    assert!(!local.is_empty());

    sync(&view(false));
    let seen = lab.spread(&ext, "198.18.0.1:8080", 30);
    assert!(
        !seen.contains("web.3"),
        "a task that is not ready still answers: {seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn ipvs_backend() {
    if !lb::ipvs_available() {
        eprintln!(
            "skipping: this kernel has no IPVS (no /proc/net/ip_vs, no ip_vs module); the nftables backend is used"
        );
        return;
    }
    if !common::root(module_path!()) {
        return;
    }
    let mut lab = Lab::new("i");
    let ns = lab.ns("t");
    let plan = lb::vip_plan(&view(true), &["front".to_string()]);
    lb::Ipvs
        .sync_task(&lab.path(&ns), &plan)
        .expect("program ipvs");
    let table = in_netns(&lab.path(&ns), || {
        std::fs::read_to_string("/proc/net/ip_vs")
    })
    .unwrap();
    assert!(table.contains("FWM"), "{table}");
    lb::Ipvs.clear(&lab.path(&ns)).expect("clear");
}
