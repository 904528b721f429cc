//! Where the socket lives, shared by the daemon and the client so they always agree.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the socket, for the daemon and the client alike.
pub const SOCKET_ENV: &str = "VAPORA_SOCKET";

/// `$XDG_RUNTIME_DIR/vapora/vapora.sock`, or without a runtime dir
/// `$TMPDIR/vapora-$UID/vapora.sock` (a directory only this user may enter).
pub fn default_socket_path() -> PathBuf {
    let runtime_dir = directories::BaseDirs::new()
        .and_then(|dirs| dirs.runtime_dir().map(Path::to_path_buf))
        .filter(|dir| dir.is_absolute());
    match runtime_dir {
        Some(dir) => dir.join("vapora").join("vapora.sock"),
        None => std::env::temp_dir()
            .join(format!("vapora-{}", current_uid()))
            .join("vapora.sock"),
    }
}

/// The data dir a daemon uses without `--data-dir` or `VAPORA_DATA_DIR`:
/// `~/.local/share/vapora`. Here, below client and daemon, because an autostarting client
/// says which data dir its daemon opens.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "vapora").map(|dirs| dirs.data_dir().to_path_buf())
}

/// The data dir a daemon started with this environment and no `--data-dir` opens.
pub fn data_dir_from_env() -> Option<PathBuf> {
    std::env::var_os("VAPORA_DATA_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(default_data_dir)
}

pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Makes sure the directory that will hold the socket exists. A directory we create is
/// 0700. An existing one must be ours and closed to others when it is the default
/// per-user directory (`private`), since in a shared temp dir another user could have
/// created it first to intercept the socket.
pub fn prepare_socket_dir(socket: &Path, private: bool) -> io::Result<()> {
    let Some(dir) = socket.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        return Ok(());
    }
    if private {
        check_private_dir(socket)?;
    }
    Ok(())
}

/// Checks that the directory holding the default per-user socket, if it exists, is ours
/// and closed to others (mode 0700). The daemon checks it before it binds there and the
/// client before it connects or starts a daemon: in a shared temp dir, another user could
/// have created it first to serve a socket of their own in it.
pub fn check_private_dir(socket: &Path) -> io::Result<()> {
    let Some(dir) = socket.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.uid() != current_uid() || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be owned by uid {} with mode 0700 (it is uid {}, mode {:o}); \
                 remove it or use --socket",
                dir.display(),
                current_uid(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}
