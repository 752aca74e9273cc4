//! Preparing an image task: the image from the node's store, the task's
//! sandbox (network namespace, files, cgroup), its overlay root, and the
//! runtime spec the shim hands to the container runtime.

use std::path::PathBuf;
use std::sync::Arc;

use shoal_proto::objects::ContainerSpec;

use super::container::{ContainerDirs, SPEC_FILE};
use super::defaults;
use super::init;
use super::mounts::task_mounts;
use super::plan::plan;
use super::rootfs::Rootfs;
use super::spec::{self, Confinement, runtime_spec};
use crate::exec::process::cgroup::Cgroups;
use crate::exec::process::config::{Bind, TaskConfig, TaskDir, TaskImage};
use crate::exec::process::logs::LogPolicy;
use crate::exec::process::{base_sandbox, files, limits};
use crate::exec::{ExecError, TaskFile, TaskRun};
use crate::image::{Image, ImageStore, RegistryAuth};
use crate::volume::VolumeStore;

/// `/etc/hosts` of every image task: images rarely carry one, and without
/// it `localhost` would go to the resolver.
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Prepares an image task: its image (pulled once per node, with the
/// service's registry credentials), then [`prepare`] on a blocking thread.
pub async fn image_task(
    images: &Arc<ImageStore>,
    volumes: Option<Arc<VolumeStore>>,
    cgroups: Cgroups,
    dir: &TaskDir,
    run: &TaskRun,
) -> Result<TaskConfig, ExecError> {
    let container = run.task.spec.as_ref().and_then(|s| s.container.as_ref());
    let reference = container.map(|c| c.image.clone()).unwrap_or_default();
    if reference.is_empty() {
        return Err(ExecError::Rejected("the service names no image".into()));
    }
    let auth = container
        .and_then(|c| c.registry_auth.as_ref())
        .map(|a| RegistryAuth {
            username: a.username.clone(),
            password: a.password.clone(),
        })
        .unwrap_or_default();
    let image = images
        .ensure(&reference, &auth)
        .await
        .map_err(|e| ExecError::Rejected(e.to_string()))?;
    let (run, dir) = (run.clone(), dir.clone());
    let prepare = move || prepare(&dir, &cgroups, &run, &image, volumes.as_deref());
    tokio::task::spawn_blocking(prepare)
        .await
        .map_err(|e| ExecError::Failed(format!("prepare panicked: {e}")))?
}

/// Sets up everything an image task needs before its shim starts it, and
/// returns its config. Blocking (mounts, files). `volumes`: the node's
/// volume store, for the task's volumes and the image's.
pub fn prepare(
    dir: &TaskDir,
    cgroups: &Cgroups,
    run: &TaskRun,
    image: &Image,
    volumes: Option<&VolumeStore>,
) -> Result<TaskConfig, ExecError> {
    let task = &run.task;
    let spec: ContainerSpec = task
        .spec
        .as_ref()
        .and_then(|s| s.container.clone())
        .unwrap_or_default();
    let hostname = if spec.hostname.is_empty() {
        task.id.chars().take(12).collect()
    } else {
        spec.hostname.clone()
    };
    // Everything that can refuse the task is checked before anything is made.
    let log = LogPolicy::of(task.spec.as_ref().and_then(|s| s.log_driver.as_ref()))?;
    let capabilities =
        defaults::capabilities(&spec.cap_add, &spec.cap_drop).map_err(ExecError::Rejected)?;
    let mut ulimits = Vec::new();
    for u in &spec.ulimits {
        if spec::rlimit_type(&u.name).is_none() {
            return Err(ExecError::Rejected(format!("unknown ulimit {:?}", u.name)));
        }
        ulimits.push((u.name.clone(), u.soft.max(0) as u64, u.hard.max(0) as u64));
    }
    let sysctls: Vec<(String, String)> = spec
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let task_files = with_name_files(&run.files, &hostname, &spec.hosts);
    let limits = limits(run, defaults::DEFAULT_PIDS_LIMIT);
    let cgroup_dirs = base_sandbox(dir, cgroups, &task.id, &task_files, limits)?;

    let rootfs = Rootfs::new(dir.path());
    rootfs
        .mount(&image.layers)
        .map_err(|e| ExecError::Failed(e.to_string()))?;
    let mut plan = plan(
        &spec,
        &image.config,
        &hostname,
        &rootfs.read("/etc/passwd"),
        &rootfs.read("/etc/group"),
    )?;
    let mut mounts = task_mounts(
        &task.id,
        &spec,
        &image.config.volumes,
        &rootfs.root(),
        volumes,
    )?;
    if spec.init {
        // `--init`: Shoal's static init as PID 1 at Docker's path; exec
        // allowed, so not among the (noexec) file binds.
        let installed = init::install(dir.path())
            .map_err(|e| ExecError::Failed(format!("cannot install docker-init: {e}")))?;
        let path = plan
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("");
        plan.argv = init::wrap(&plan.argv, &rootfs.root(), path).map_err(ExecError::Rejected)?;
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination(init::INIT_PATH.into());
        m.set_typ(Some("bind".into()));
        m.set_source(Some(installed));
        m.set_options(Some(
            ["rbind", "ro", "nosuid", "nodev"]
                .map(String::from)
                .to_vec(),
        ));
        mounts.mounts.push(m);
    }
    let binds: Vec<Bind> = task_files
        .iter()
        .map(|f| Bind {
            source: files::mirror(&dir.files(), &f.path),
            target: f.path.clone(),
        })
        .collect();
    let runtime = runtime_spec(
        &plan,
        &Confinement {
            hostname: &hostname,
            rootfs: &rootfs.root(),
            read_only: spec.read_only,
            netns: &dir.netns(),
            cgroups_path: &cgroups.path(&task.id),
            capabilities: &capabilities,
            mounts: &mounts.mounts,
            binds: &binds,
            memory_bytes: limits.memory_bytes,
            nano_cpus: limits.nano_cpus,
            pids: limits.pids,
            ulimits: &ulimits,
            sysctls: &sysctls,
        },
    );
    let dirs = ContainerDirs::new(dir.path());
    let fail = |what: &str, e: &dyn std::fmt::Display| ExecError::Failed(format!("{what}: {e}"));
    std::fs::create_dir_all(&dirs.bundle).map_err(|e| fail("cannot create the bundle", &e))?;
    runtime
        .save(dirs.bundle.join(SPEC_FILE))
        .map_err(|e| fail("cannot write the runtime spec", &e))?;

    Ok(TaskConfig {
        task_id: task.id.clone(),
        program: PathBuf::from(&plan.argv[0]),
        argv: plan.argv,
        env: plan.env,
        cwd: PathBuf::from(plan.cwd),
        uid: plan.uid,
        gid: plan.gid,
        hostname,
        cgroup_procs: cgroup_dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
        oom_events: cgroups.oom_events(&task.id),
        cgroup_dirs,
        binds,
        stop_signal: plan.stop_signal,
        log,
        image_healthcheck: image.config.healthcheck.clone(),
        image: Some(TaskImage {
            reference: spec.image.clone(),
            id: image.id.clone(),
        }),
        volumes: mounts.volumes,
    })
}

/// The task's files plus `/etc/hostname` and `/etc/hosts` (with the
/// service's `--host` lines, "IP name..."), as Docker gives every container
/// (unless a config already targets them).
fn with_name_files(files: &[TaskFile], hostname: &str, hosts: &[String]) -> Vec<TaskFile> {
    let mut out = files.to_vec();
    let mut etc_hosts = HOSTS.to_string();
    for line in hosts {
        etc_hosts.push_str(&line.split_whitespace().collect::<Vec<_>>().join("\t"));
        etc_hosts.push('\n');
    }
    for (path, data) in [
        ("/etc/hostname", format!("{hostname}\n")),
        ("/etc/hosts", etc_hosts),
    ] {
        if !out.iter().any(|f| f.path == std::path::Path::new(path)) {
            out.push(TaskFile {
                path: path.into(),
                data: data.into_bytes(),
                uid: 0,
                gid: 0,
                mode: 0o644,
                secret: false,
            });
        }
    }
    out
}
