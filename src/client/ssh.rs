//! Reaching a daemon on another host through OpenSSH:
//! `--host ssh://[USER@]HOST[:PORT][/REMOTE/SOCKET]` (or `VAPORA_HOST`).
//!
//! vapora adds no network protocol, encryption or accounts of its own. The client starts
//! `ssh -T [-p PORT] [USER@]HOST vapora proxy [--socket PATH]` and speaks its usual frames
//! over the child's stdin and stdout; on the remote host, `vapora proxy` copies them to
//! and from the local daemon's socket, where the daemon sees the SSH user's credentials
//! and admits or refuses them as it would a local client. `VAPORA_SSH` replaces the `ssh`
//! command (e.g. `ssh -o ControlMaster=auto -o ControlPath=~/.ssh/vapora-%C -o
//! ControlPersist=60`, so that one-shot commands share one connection).
//!
//! The child's stdin and stdout are one end of a socket pair: the client then reads and
//! writes it exactly as a local daemon's socket (poll, timeouts, `shutdown` from another
//! thread to end a parked claim).

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::protocol::shell::quote_words;

/// Where the daemon is: the parts of an `ssh://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The daemon's socket on the remote host; `None`: the remote user's default socket.
    pub socket: Option<String>,
}

impl SshTarget {
    /// Parses `ssh://[USER@]HOST[:PORT][/REMOTE/SOCKET]` (an IPv6 address in brackets).
    pub fn parse(text: &str) -> Result<SshTarget, String> {
        let rest = text.strip_prefix("ssh://").ok_or_else(|| {
            format!("--host {text:?}: expected ssh://[USER@]HOST[:PORT][/REMOTE/SOCKET]")
        })?;
        let (authority, socket) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(rest[slash..].to_string())),
            None => (rest, None),
        };
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (Some(user.to_string()), host_port),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("--host {text:?}: an unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("--host {text:?}: expected :PORT after the bracketed host")
                })?),
            };
            (host.to_string(), port)
        } else {
            match host_port.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (host_port.to_string(), None),
            }
        };
        let port = port
            .map(|port| {
                port.parse::<u16>()
                    .ok()
                    .filter(|&port| port > 0)
                    .ok_or_else(|| format!("--host {text:?}: {port:?} is not a port number"))
            })
            .transpose()?;
        // A host or user starting with '-' would be read by ssh as an option
        // (`-oProxyCommand=...`); blanks and control characters have no place in either.
        let bad = |part: &str| {
            part.is_empty()
                || part.starts_with('-')
                || part.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad(&host) {
            return Err(format!("--host {text:?}: {host:?} is not a host name"));
        }
        if let Some(user) = &user
            && bad(user)
        {
            return Err(format!("--host {text:?}: {user:?} is not a user name"));
        }
        if let Some(socket) = &socket
            && (socket.len() < 2 || socket.contains('\0'))
        {
            return Err(format!(
                "--host {text:?}: the remote socket must be an absolute path"
            ));
        }
        Ok(SshTarget {
            user,
            host,
            port,
            socket,
        })
    }

    /// The address as the user would write it, for messages.
    pub fn describe(&self) -> String {
        let mut text = String::from("ssh://");
        if let Some(user) = &self.user {
            text.push_str(user);
            text.push('@');
        }
        if self.host.contains(':') {
            text.push_str(&format!("[{}]", self.host));
        } else {
            text.push_str(&self.host);
        }
        if let Some(port) = self.port {
            text.push_str(&format!(":{port}"));
        }
        if let Some(socket) = &self.socket {
            text.push_str(socket);
        }
        text
    }

    /// The command that reaches `vapora proxy` on the host: `VAPORA_SSH` (split on blanks)
    /// or `ssh`, then `-T`, the port, the destination and the remote command (ssh hands it
    /// to the remote user's shell, so the socket path is quoted for it).
    pub fn command(&self, expect_uid: Option<&str>) -> Command {
        let ssh = std::env::var("VAPORA_SSH").unwrap_or_default();
        let mut words = ssh.split_whitespace();
        let program = words.next().unwrap_or("ssh");
        let mut command = Command::new(program);
        command.args(words).arg("-T");
        if let Some(port) = self.port {
            command.arg("-p").arg(port.to_string());
        }
        let destination = match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        };
        let mut remote = vec!["vapora".to_string(), "proxy".to_string()];
        if let Some(socket) = &self.socket {
            remote.push("--socket".into());
            remote.push(socket.clone());
        }
        if let Some(uid) = expect_uid {
            remote.push("--expect-uid".into());
            remote.push(uid.to_string());
        }
        command.arg("--").arg(destination).arg(quote_words(&remote));
        command
    }

    /// Starts the command with its stdin and stdout on one end of a socket pair, and
    /// returns the other end. Its stderr is kept (`SshChild::failure` quotes it).
    pub fn start(&self, expect_uid: Option<&str>) -> io::Result<(UnixStream, SshChild)> {
        let mut command = self.command(expect_uid);
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_too = theirs.try_clone()?;
        command
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_too)))
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = child.stderr.take();
        Ok((ours, SshChild { child, stderr }))
    }
}

/// The running `ssh`: stopped and reaped when the connection goes.
#[derive(Debug)]
pub struct SshChild {
    child: Child,
    stderr: Option<ChildStderr>,
}

/// How long a connection that failed waits for `ssh` to exit, to say why.
const EXIT_WAIT: Duration = Duration::from_secs(3);

/// The exit status of a remote `vapora proxy` that found no daemon (as any client's).
const NO_DAEMON: i32 = 3;

/// Why a connection through ssh failed, in ssh's own words where it said any.
#[derive(Debug)]
pub struct SshFailure {
    /// The remote proxy found no daemon there (it exited 3).
    pub no_daemon: bool,
    pub message: String,
}

impl SshChild {
    /// What went wrong, once the connection ended before or instead of an answer: ssh's
    /// exit status and the end of what it (or the remote command) wrote on stderr.
    pub fn failure(&mut self, target: &SshTarget, what: &str) -> SshFailure {
        let status = self.exited_within(EXIT_WAIT);
        let said = self.said();
        let code = status.and_then(|status| status.code());
        let host = &target.host;
        if code == Some(NO_DAEMON) && !said.is_empty() {
            // The remote proxy's own message says where it looked.
            let said = said.strip_prefix("vapora: ").unwrap_or(&said);
            return SshFailure {
                no_daemon: true,
                message: format!("on {host}: {said}"),
            };
        }
        let mut message = match code {
            Some(NO_DAEMON) => format!("no vapora daemon answers on {host}"),
            Some(127) => format!(
                "{host} has no `vapora` command for this user (the remote shell could not find it)"
            ),
            Some(255) => format!("ssh could not connect to {}", target.describe()),
            Some(code) => format!("{what} through {} (ssh exited {code})", target.describe()),
            None => match status {
                Some(status) => format!("{what} through {} (ssh: {status})", target.describe()),
                None => format!("{what} through {}", target.describe()),
            },
        };
        if !said.is_empty() {
            message.push_str(": ");
            message.push_str(&said);
        }
        SshFailure {
            no_daemon: code == Some(NO_DAEMON),
            message,
        }
    }

    /// Whether `ssh` is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return None,
            }
        }
    }

    /// The last lines ssh and the remote command wrote on stderr (at most 1 KiB), on one
    /// line. Read once ssh has exited (or without waiting for more if it has not).
    fn said(&mut self) -> String {
        let Some(mut stderr) = self.stderr.take() else {
            return String::new();
        };
        set_nonblocking(&stderr);
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        let mut said = lines.join(" / ");
        if said.len() > 1024 {
            let mut cut = said.len() - 1024;
            while !said.is_char_boundary(cut) {
                cut += 1;
            }
            said = format!("…{}", &said[cut..]);
        }
        crate::client::escape::escape(&said).into_owned()
    }
}

fn set_nonblocking(stderr: &ChildStderr) {
    use std::os::fd::AsRawFd;
    let fd = stderr.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

impl Drop for SshChild {
    /// The connection is gone: ssh is told to stop (its remote proxy then sees its input
    /// end) and reaped, so a long-lived worker that reconnects leaves no zombies behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: a signal to our own child, not yet reaped (so its pid is still ours).
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_into_their_parts() {
        let full =
            SshTarget::parse("ssh://ops@build-1.example:2222/run/vapora/vapora.sock").unwrap();
        assert_eq!(
            full,
            SshTarget {
                user: Some("ops".into()),
                host: "build-1.example".into(),
                port: Some(2222),
                socket: Some("/run/vapora/vapora.sock".into()),
            }
        );
        assert_eq!(
            full.describe(),
            "ssh://ops@build-1.example:2222/run/vapora/vapora.sock"
        );
        let bare = SshTarget::parse("ssh://host").unwrap();
        assert_eq!((bare.user, bare.port, bare.socket), (None, None, None));
        let v6 = SshTarget::parse("ssh://[::1]:22").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(22)));
        assert_eq!(v6.describe(), "ssh://[::1]:22");
    }

    #[test]
    fn what_ssh_would_read_as_an_option_is_refused() {
        for bad in [
            "host",
            "http://host",
            "ssh://",
            "ssh://-oProxyCommand=touch%20x",
            "ssh://-x@host",
            "ssh://host:0",
            "ssh://host:http",
            "ssh://a b",
            "ssh://[::1",
            "ssh://host/",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_remote_command_quotes_the_socket_for_the_remote_shell() {
        let target = SshTarget::parse("ssh://u@h:2200/tmp/my dir/$x.sock").unwrap();
        let command = target.command(Some("1000"));
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[args.len() - 2..],
            [
                "u@h".to_string(),
                "vapora proxy --socket '/tmp/my dir/$x.sock' --expect-uid 1000".to_string()
            ]
        );
        assert!(args.starts_with(&["-T".into(), "-p".into(), "2200".into()]));
    }
}
