//! Binding the listening socket: reclaiming a stale socket file left by a dead daemon, and
//! refusing to start beside a live one.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, bail};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use interprocess::os::unix::uds_local_socket::tokio::Listener;

/// Binds `path` with permission bits `mode`. The returned listener removes the socket file
/// when dropped.
pub fn bind(path: &Path, private_dir: bool, mode: u32) -> anyhow::Result<Listener> {
    crate::paths::prepare_socket_dir(path, private_dir)
        .with_context(|| format!("cannot prepare the directory of {}", path.display()))?;
    reclaim_stale(path)?;
    let name = path
        .to_fs_name::<GenericFilePath>()
        .with_context(|| format!("invalid socket path {}", path.display()))?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(mode as libc::mode_t)
        .reclaim_name(true)
        .create_tokio_as::<Listener>()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                anyhow::anyhow!(
                    "another vapora daemon started on {} at the same moment",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot listen on {}", path.display()))
            }
        })?;
    // The mode given at creation is filtered through the umask; set it exactly. Until then
    // the file is at most as open as asked (the umask only removes bits).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

/// Removes a socket file nobody listens on; refuses if a daemon answers there or if the
/// path is something other than a socket.
fn reclaim_stale(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => bail!(
            "a vapora daemon is already running on {} (stop it with `vapora shutdown`, \
             or choose another --socket)",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            tracing::info!(socket = %path.display(), "removed a stale socket left by a dead daemon");
            Ok(())
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot check existing socket {}", path.display()))
        }
    }
}
