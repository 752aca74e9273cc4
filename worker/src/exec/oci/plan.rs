//! What a task runs, when it runs an image: the service's container spec
//! laid over the image's config with Docker's precedence rules.
//!
//! - `command` (compose `entrypoint:`) replaces the image's Entrypoint
//!   and drops its Cmd; `args` (compose `command:`) replace the Cmd.
//! - Environment: the image's, then the service's, a key set twice keeps
//!   the service's value; PATH, HOSTNAME and HOME are filled in when
//!   missing.
//! - Working dir, user and stop signal: the service's, else the image's.
//!   Names resolve against the image's own /etc/passwd and /etc/group.

use shoal_proto::objects::ContainerSpec;

use crate::exec::ExecError;
use crate::exec::process::config::{environment, resolve_user};
use crate::image::ImageConfig;

/// The process a task's container starts, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// argv, argv[0] looked up in the container's PATH by the runtime.
    pub argv: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory inside the image.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Signal name that asks the task to stop (empty: SIGTERM).
    pub stop_signal: String,
}

/// Lays `spec` over `image`. `passwd`/`group`: the image's files (empty
/// when it has none; numeric users need none).
pub fn plan(
    spec: &ContainerSpec,
    image: &ImageConfig,
    hostname: &str,
    passwd: &str,
    group: &str,
) -> Result<Plan, ExecError> {
    let (entrypoint, cmd) = if spec.command.is_empty() {
        let cmd = if spec.args.is_empty() {
            &image.cmd
        } else {
            &spec.args
        };
        (&image.entrypoint, cmd)
    } else {
        (&spec.command, &spec.args)
    };
    let argv: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if argv.is_empty() {
        return Err(ExecError::Rejected(
            "the image has no Entrypoint or Cmd and the service gives no command".into(),
        ));
    }
    let user_spec = if spec.user.is_empty() {
        &image.user
    } else {
        &spec.user
    };
    let user = resolve_user(user_spec, passwd, group, "the image's")?;
    let env = environment(&merge_env(&image.env, &spec.env), hostname, &user.home);
    let cwd = [&spec.dir, &image.working_dir]
        .into_iter()
        .find(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ExecError::Rejected(format!(
            "working dir {cwd:?} must be an absolute path"
        )));
    }
    let stop_signal = if spec.stop_signal.is_empty() {
        image.stop_signal.clone()
    } else {
        spec.stop_signal.clone()
    };
    Ok(Plan {
        argv,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        stop_signal,
    })
}

/// The image's environment with the service's laid over it, by key.
fn merge_env(image: &[String], service: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let mut out: Vec<String> = image
        .iter()
        .filter(|e| !service.iter().any(|s| key(s) == key(e)))
        .cloned()
        .collect();
    out.extend(service.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/opt/bin:/bin".into(), "MODE=image".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
            stop_signal: "SIGQUIT".into(),
            ..Default::default()
        }
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn the_image_decides_when_the_service_is_silent() {
        let p = plan(&ContainerSpec::default(), &image(), "h", PASSWD, GROUP).unwrap();
        assert_eq!(p.argv, ["/entry", "serve", "--port=80"]);
        assert_eq!((p.uid, p.gid), (1000, 1001));
        assert_eq!(p.cwd, "/srv");
        assert_eq!(p.stop_signal, "SIGQUIT");
        assert!(p.env.contains(&"PATH=/opt/bin:/bin".to_string()));
        assert!(p.env.contains(&"HOME=/home/app".to_string()));
        assert!(p.env.contains(&"HOSTNAME=h".to_string()));
    }

    #[test]
    fn args_replace_cmd_and_command_replaces_both() {
        let args = ContainerSpec {
            args: vec!["once".into()],
            ..Default::default()
        };
        let p = plan(&args, &image(), "h", PASSWD, GROUP).unwrap();
        assert_eq!(p.argv, ["/entry", "once"]);
        let command = ContainerSpec {
            command: vec!["sh".into(), "-c".into()],
            ..Default::default()
        };
        let p = plan(&command, &image(), "h", PASSWD, GROUP).unwrap();
        assert_eq!(
            p.argv,
            ["sh", "-c"],
            "the image's Cmd goes with its Entrypoint"
        );
    }

    #[test]
    fn the_service_wins_by_key() {
        let spec = ContainerSpec {
            env: vec!["MODE=service".into()],
            user: "0:staff".into(),
            dir: "/tmp".into(),
            stop_signal: "SIGINT".into(),
            ..Default::default()
        };
        let p = plan(&spec, &image(), "h", PASSWD, GROUP).unwrap();
        assert!(p.env.contains(&"MODE=service".to_string()));
        assert!(!p.env.contains(&"MODE=image".to_string()));
        assert_eq!((p.uid, p.gid, p.cwd.as_str()), (0, 50, "/tmp"));
        assert_eq!(p.stop_signal, "SIGINT");
    }

    #[test]
    fn unknown_users_and_empty_images_are_refused() {
        let spec = ContainerSpec {
            user: "nobody-here".into(),
            ..Default::default()
        };
        let err = plan(&spec, &image(), "h", PASSWD, GROUP).unwrap_err();
        assert!(err.to_string().contains("the image's /etc/passwd"), "{err}");
        let numeric = ContainerSpec {
            user: "4242:4243".into(),
            ..Default::default()
        };
        let p = plan(&numeric, &image(), "h", "", "").unwrap();
        assert_eq!((p.uid, p.gid), (4242, 4243));
        let err = plan(
            &ContainerSpec::default(),
            &ImageConfig::default(),
            "h",
            "",
            "",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no Entrypoint or Cmd"), "{err}");
    }
}
