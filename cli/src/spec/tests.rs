//! The value parsers: Docker's durations, sizes, ports, mounts,
//! references, ulimits, sysctls, hosts and capabilities.

use shoal_proto::objects::{mount, port_config};

use super::*;

fn secs(s: &str) -> f64 {
    let d = duration(s).unwrap();
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

#[test]
fn durations_like_go() {
    assert_eq!(secs("10s"), 10.0);
    assert_eq!(secs("1m30s"), 90.0);
    assert_eq!(secs("500ms"), 0.5);
    assert_eq!(secs("1.5s"), 1.5);
    assert_eq!(secs("2h"), 7200.0);
    assert_eq!(secs("0"), 0.0);
    for bad in ["", "10", "ten", "5x", "s"] {
        let err = duration(bad).unwrap_err();
        assert!(err.contains("invalid duration"), "{bad}: {err}");
    }
}

#[test]
fn sizes_and_cpus() {
    assert_eq!(memory("512M"), Ok(512 << 20));
    assert_eq!(memory("1g"), Ok(1 << 30));
    assert_eq!(memory("1GiB"), Ok(1 << 30));
    assert_eq!(memory("64kb"), Ok(64 << 10));
    assert_eq!(memory("1024"), Ok(1024));
    assert!(memory("lots").unwrap_err().contains("invalid size"));
    assert_eq!(cpus("0.5"), Ok(500_000_000));
    assert_eq!(cpus("2"), Ok(2_000_000_000));
    assert!(cpus("-1").is_err() && cpus("half").is_err());
}

#[test]
fn ports_short_and_long() {
    let p = port("8080:80").unwrap();
    assert_eq!((p.published_port, p.target_port), (8080, 80));
    assert_eq!(p.protocol(), port_config::Protocol::Tcp);
    assert_eq!(p.publish_mode(), port_config::PublishMode::Ingress);
    let p = port("53:53/udp").unwrap();
    assert_eq!(p.protocol(), port_config::Protocol::Udp);
    let p = port("80").unwrap();
    assert_eq!((p.published_port, p.target_port), (0, 80));
    let p = port("mode=host,target=80,published=8080,protocol=udp").unwrap();
    assert_eq!(p.publish_mode(), port_config::PublishMode::Host);
    assert_eq!((p.published_port, p.target_port), (8080, 80));
    assert!(port("99999:80").unwrap_err().contains("invalid port"));
    assert!(port("80/icmp").unwrap_err().contains("invalid protocol"));
    assert!(
        port("published=80")
            .unwrap_err()
            .contains("target is required")
    );
    assert!(
        port("mode=bridge,target=1")
            .unwrap_err()
            .contains("publish mode")
    );
    assert_eq!(port_rm("80"), Ok((80, 0)));
    assert_eq!(port_rm("53/udp"), Ok((53, 1)));
    assert_eq!(port_rm("8080:80"), Ok((80, 0)));
}

#[test]
fn mounts() {
    let m = mount("type=bind,source=/data,target=/srv,readonly").unwrap();
    assert_eq!(m.r#type(), mount::Type::Bind);
    assert_eq!(
        (m.source.as_str(), m.target.as_str(), m.read_only),
        ("/data", "/srv", true)
    );
    let m = mount("source=vol,target=/v").unwrap();
    assert_eq!(m.r#type(), mount::Type::Volume);
    assert!(!m.read_only);
    let m = mount("type=tmpfs,dst=/tmp,tmpfs-size=64M").unwrap();
    assert_eq!(m.tmpfs_size_bytes, 64 << 20);
    assert!(
        mount("type=nfs,target=/x")
            .unwrap_err()
            .contains("mount type")
    );
    assert!(
        mount("source=x")
            .unwrap_err()
            .contains("target is required")
    );
    assert!(
        mount("type=bind,target=/x")
            .unwrap_err()
            .contains("needs a source")
    );
    assert!(
        mount("target=/x,colour=red")
            .unwrap_err()
            .contains("colour")
    );
    assert!(
        mount("target=/x,readonly=maybe")
            .unwrap_err()
            .contains("boolean")
    );
}

#[test]
fn file_refs() {
    let r = file_ref("db_pass").unwrap();
    assert_eq!(
        (r.source.as_str(), r.target.as_str(), r.mode),
        ("db_pass", "", 0o444)
    );
    let r = file_ref("source=db,target=pw,uid=1000,gid=10,mode=0400").unwrap();
    assert_eq!((r.uid, r.gid, r.mode), (1000, 10, 0o400));
    assert_eq!(r.target, "pw");
    assert!(
        file_ref("target=x")
            .unwrap_err()
            .contains("source is required")
    );
    assert!(file_ref("source=a,mode=999").unwrap_err().contains("octal"));
    assert!(file_ref("source=a,uid=me").unwrap_err().contains("uid"));
}

#[test]
fn key_values() {
    assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
    assert_eq!(key_value("a"), Ok(("a".into(), "".into())));
    assert!(key_value("=x").is_err());
}

#[test]
fn mounts_of_named_volumes() {
    let m = mount(
        "type=volume,source=db,target=/db,volume-driver=local,volume-label=tier=db,\
         volume-label=bare,\"volume-opt=o=addr=10.0.0.1,rw\",volume-opt=type=nfs,volume-nocopy",
    )
    .unwrap();
    assert_eq!(m.volume_driver, "local");
    assert_eq!(m.volume_labels["tier"], "db");
    assert_eq!(m.volume_labels["bare"], "");
    // Quoted as Docker's CSV: the comma stays in the value.
    assert_eq!(m.volume_options["o"], "addr=10.0.0.1,rw");
    assert_eq!(m.volume_options["type"], "nfs");
    assert!(m.volume_nocopy);
    assert!(
        !mount("source=v,target=/v,volume-nocopy=false")
            .unwrap()
            .volume_nocopy
    );
    assert!(
        mount("type=bind,source=/a,target=/b,volume-nocopy")
            .unwrap_err()
            .contains("cannot mix \"volume-nocopy\" with mount type \"bind\"")
    );
    assert!(
        mount("type=tmpfs,target=/b,volume-driver=x")
            .unwrap_err()
            .contains("mount type \"tmpfs\"")
    );
    assert!(
        mount("target=/b,volume-opt==x")
            .unwrap_err()
            .contains("expected volume-opt=KEY=VALUE")
    );
    assert!(
        mount("target=/b,\"volume-opt=o=a")
            .unwrap_err()
            .contains("unterminated quote")
    );
}

#[test]
fn ulimits_like_docker() {
    let u = ulimit("nofile=1024:2048").unwrap();
    assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
    let u = ulimit("nproc=512").unwrap();
    assert_eq!((u.soft, u.hard), (512, 512));
    let u = ulimit("memlock=-1:-1").unwrap();
    assert_eq!((u.soft, u.hard), (-1, -1));
    let u = ulimit("core=0:-1").unwrap();
    assert_eq!((u.soft, u.hard), (0, -1));
    for (bad, why) in [
        ("nofiles=1", "unknown ulimit \"nofiles\""),
        ("nofile", "expected NAME=SOFT[:HARD]"),
        (
            "nofile=2048:1024",
            "must not exceed the hard limit: 2048 > 1024",
        ),
        ("nofile=1:2:3", "at most two values"),
        ("nofile=many", "\"many\" is not a number"),
        ("nofile=-1:10", "must not exceed"),
    ] {
        let err = ulimit(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert_eq!(key_of("nofile=1"), "nofile");
    assert_eq!(key_of("nofile"), "nofile");
}

#[test]
fn sysctls_hosts_and_capabilities() {
    assert_eq!(
        sysctl("net.ipv4.ip_forward=1"),
        Ok(("net.ipv4.ip_forward".into(), "1".into()))
    );
    assert_eq!(
        sysctl("net.ipv4.ping_group_range=0 2147483647").map(|(_, v)| v),
        Ok("0 2147483647".into())
    );
    for (bad, why) in [
        ("net.ipv4.ip_forward", "expected KEY=VALUE"),
        ("=1", "is not a kernel parameter name"),
        ("net..x=1", "is not a kernel parameter name"),
        ("net.core.somaxconn=", "has no value"),
    ] {
        let err = sysctl(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }

    assert_eq!(host("db:10.0.0.5"), Ok("10.0.0.5 db".into()));
    assert_eq!(host("db=10.0.0.5"), Ok("10.0.0.5 db".into()));
    assert_eq!(host("v6:::1"), Ok("::1 v6".into()));
    assert_eq!(host("v6:[2001:db8::1]"), Ok("2001:db8::1 v6".into()));
    assert_eq!(host("gw:host-gateway"), Ok("host-gateway gw".into()));
    for (bad, why) in [
        ("db", "expected HOST:IP"),
        (":10.0.0.5", "is not a host name"),
        ("db:nowhere", "\"nowhere\" is not an IP address"),
        ("db:10.0.0.256", "is not an IP address"),
    ] {
        let err = host(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }

    assert_eq!(capability("net_admin"), Ok("CAP_NET_ADMIN".into()));
    assert_eq!(capability(" CAP_SYS_TIME "), Ok("CAP_SYS_TIME".into()));
    assert_eq!(capability("all"), Ok("ALL".into()));
    assert_eq!(capability("reset"), Ok("RESET".into()));
    assert!(
        capability("NET ADMIN")
            .unwrap_err()
            .contains("invalid capability")
    );
    assert!(capability("").is_err());
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        effective_caps(
            &strings(&["net_admin", "CHOWN", "CAP_NET_ADMIN"]),
            &strings(&["NET_ADMIN", "all", "SYS_TIME"])
        ),
        (strings(&["CAP_CHOWN", "CAP_NET_ADMIN"]), strings(&["ALL"]))
    );
    assert_eq!(
        effective_caps(&strings(&["ALL", "CHOWN"]), &strings(&["CHOWN"])),
        (strings(&["ALL"]), strings(&["CAP_CHOWN"]))
    );
    assert_eq!(pids("0"), Ok(0));
    assert_eq!(pids("100"), Ok(100));
    assert!(pids("-1").unwrap_err().contains("0 (unlimited) or more"));
}
