//! A real headless browser (Debian's `chromium-headless-shell`) inside a
//! host's network namespace, driven with the Chrome DevTools Protocol over
//! `--remote-debugging-pipe`: the browser reads NUL-terminated JSON
//! commands on its fd 3 and writes replies and events on its fd 4. No
//! socket joins the test to the namespace, and no websocket is needed.
//!
//! The browser runs in a process group of its own, killed (by its id) when
//! the [`Browser`] is dropped; its profile and log are in the cluster's
//! scratch directory.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cluster::Cluster;

/// The browser Debian packages for headless use.
pub const CHROMIUM: &str = "chromium-headless-shell";
/// How long one protocol command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless browser on one host.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    replies: Receiver<Value>,
    next_id: u64,
    log: PathBuf,
}

/// A tab, attached in flat mode: its commands carry its session id.
#[derive(Debug, Clone)]
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts the browser in host `i`'s network namespace. Fails (the test
    /// does not skip) when chromium-headless-shell is not installed.
    pub fn launch(cluster: &Cluster, i: usize) -> anyhow::Result<Browser> {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(CHROMIUM).is_file()))
            .unwrap_or(false);
        if !found {
            bail!(
                "{CHROMIUM} is not installed: run deploy/install-deps.sh (Debian: apt-get install {CHROMIUM})"
            );
        }
        // In the run's scratch directory: removed with the cluster.
        let profile = cluster.dir().join(format!("chromium-{i}-profile"));
        std::fs::create_dir_all(&profile)?;
        let log = cluster.dir().join(format!("chromium-{i}.log"));
        let stderr = File::create(&log)?;
        // The shell moves the pipes to fds 3 (commands) and 4 (replies)
        // and execs, so the browser keeps the pid of the process started.
        let mut child = Command::new("ip")
            .args(["netns", "exec", cluster.netns(i), "sh", "-c"])
            .arg(r#"exec "$@" 3<&0 4>&1 </dev/null >&2"#)
            .arg("sh")
            .arg(CHROMIUM)
            .args([
                "--no-sandbox",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--disable-gpu",
                "--disable-extensions",
                "--disable-background-networking",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {CHROMIUM}"))?;
        let commands = child.stdin.take().context("browser stdin")?;
        let output = child.stdout.take().context("browser stdout")?;
        let (tx, replies) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            let mut message = Vec::new();
            while matches!(reader.read_until(0, &mut message), Ok(n) if n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&message)
                    && tx.send(v).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands,
            replies,
            next_id: 0,
            log,
        };
        browser
            .call(None, "Browser.getVersion", json!({}))
            .context("the browser does not answer")?;
        Ok(browser)
    }

    /// Opens `url` in a new tab.
    pub fn open(&mut self, url: &str) -> anyhow::Result<Page> {
        let target = self.call(None, "Target.createTarget", json!({ "url": url }))?;
        let target = target["targetId"].as_str().context("no targetId")?;
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        )?;
        let session = attached["sessionId"].as_str().context("no sessionId")?;
        Ok(Page {
            session: session.to_string(),
        })
    }

    /// The value of the JavaScript `expression` in `page` (a promise is
    /// awaited); a thrown exception is an error.
    pub fn eval(&mut self, page: &Page, expression: &str) -> anyhow::Result<Value> {
        let reply = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(exception) = reply.get("exceptionDetails") {
            bail!("{expression}: {exception}");
        }
        Ok(reply["result"]["value"].clone())
    }

    /// The end of the browser's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends one command and waits for its reply (events are skipped).
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&command)?;
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .and_then(|()| self.commands.flush())
            .with_context(|| format!("{method}: the browser is gone"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok(reply) => reply,
                Err(RecvTimeoutError::Timeout) => bail!("{method}: no reply in {CALL_TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "{method}: the browser exited; its log ends with:\n{}",
                    self.log_tail(20)
                ),
            };
            if reply["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                bail!("{method}: {error}");
            }
            return Ok(reply["result"].clone());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser's group: the wrapper script, the browser and its
        // renderers.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
