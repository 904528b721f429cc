//! The daemon under test: one the user points at with `--socket`, or one the benchmark
//! starts itself in a fresh temporary directory (a fresh one for every scenario run, so
//! that no run inherits another's queue).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::client::autostart::{NotReady, spawn_until_ready};
use crate::client::connection::Client;
use crate::protocol::{Request, Response};

/// How long a daemon may take to start: loading a million tasks takes seconds.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Target {
    pub socket: PathBuf,
    /// Set when the benchmark owns the daemon.
    own: Option<OwnDaemon>,
}

struct OwnDaemon {
    vapora: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Target {
    /// A daemon someone else runs.
    pub fn existing(socket: PathBuf) -> Target {
        Target { socket, own: None }
    }

    /// Starts `vapora daemon` with `args` in a new temporary directory (socket, data dir and
    /// log inside it) and returns once it answers.
    pub fn start(vapora: &Path, args: &[String]) -> anyhow::Result<Target> {
        let dir = std::env::temp_dir().join(format!(
            "vapora-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut target = Target {
            socket: dir.join("vapora.sock"),
            own: Some(OwnDaemon {
                vapora: vapora.to_path_buf(),
                dir,
                args: args.to_vec(),
                child: None,
            }),
        };
        target.spawn()?;
        Ok(target)
    }

    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// (Re)starts the owned daemon on the same data dir; returns how long it took to start
    /// answering requests.
    pub fn spawn(&mut self) -> anyhow::Result<Duration> {
        let socket = self.socket.clone();
        let own = self
            .own
            .as_mut()
            .ok_or_else(|| anyhow!("only a daemon the benchmark started can be started"))?;
        if own.child.is_some() {
            bail!("the daemon is already running");
        }
        let log_path = own.dir.join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = Command::new(&own.vapora);
        command
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(own.dir.join("data"))
            .args(&own.args)
            .env_remove("VAPORA_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        let child = match spawn_until_ready(&mut command, START_TIMEOUT) {
            Ok(child) => child,
            Err(NotReady::Timeout(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the daemon did not start in {START_TIMEOUT:?}; see {}",
                    log_path.display()
                );
            }
            Err(NotReady::Spawn(e)) => {
                return Err(e).with_context(|| format!("cannot run {}", own.vapora.display()));
            }
            Err(NotReady::Exited(status)) => {
                bail!("the daemon exited ({status}); see {}", log_path.display())
            }
        };
        own.child = Some(child);
        // Ready means listening; the first answer is what a user waits for.
        self.pid()?;
        Ok(started.elapsed())
    }

    /// Stops the owned daemon with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let own = self
            .own
            .as_mut()
            .ok_or_else(|| anyhow!("only a daemon the benchmark started can be stopped"))?;
        if let Some(mut child) = own.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait()?;
            if !status.success() {
                bail!("the daemon exited with {status}");
            }
        }
        Ok(())
    }

    pub fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.socket).map_err(|e| match e {
            crate::client::connection::ConnectError::NoDaemon(e) => {
                anyhow!("no daemon at {}: {e}", self.socket.display())
            }
            crate::client::connection::ConnectError::Other(e) => anyhow!("{}", e.message),
            crate::client::connection::ConnectError::WrongOwner(wrong) => anyhow!(
                "the daemon runs as uid {}, not uid {}",
                wrong.found,
                wrong.expected
            ),
        })
    }

    /// Waits until the daemon's store has committed everything journaled (its metrics'
    /// `store_backlog_bytes` is 0), polling every 10 ms for up to a minute.
    pub fn settle(&self) -> anyhow::Result<()> {
        let mut client = self.connect()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match call(&mut client, &Request::Metrics)? {
                Response::Metrics(m) if m.store_backlog_bytes == 0 => return Ok(()),
                Response::Metrics(_) => {}
                other => bail!("unexpected answer to a metrics request: {other:?}"),
            }
            if std::time::Instant::now() > deadline {
                bail!("the daemon's store did not catch up within a minute");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The daemon's pid, from its answer to a ping.
    pub fn pid(&self) -> anyhow::Result<u32> {
        Ok(self.info()?.pid)
    }

    /// Most tasks the daemon takes in one add request (its `--max-batch`).
    pub fn max_batch(&self) -> anyhow::Result<usize> {
        Ok(self.info()?.limits.batch as usize)
    }

    fn info(&self) -> anyhow::Result<crate::protocol::DaemonInfo> {
        match call(&mut self.connect()?, &Request::Ping)? {
            Response::Pong(info) => Ok(info),
            other => bail!("unexpected answer to a ping: {other:?}"),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(own) = self.own.as_mut() {
            if let Some(mut child) = own.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&own.dir);
        }
    }
}

/// One request; a daemon's error becomes an error here (a benchmark stops at the first).
pub fn call(client: &mut Client, request: &Request) -> anyhow::Result<Response> {
    client
        .call(request)
        .map_err(|e| anyhow!("{}", e.message))?
        .map_err(|e| anyhow!("the daemon refused: {e}"))
}
