//! Starting a task's shell with the C library's `posix_spawnp`, called directly.
//!
//! The standard library's `Command` uses `posix_spawn` only after it has read the C
//! library's version through a dynamic symbol lookup. A statically linked binary, the
//! one the README and the Debian package install because its one-shot commands start
//! faster, has no dynamic symbols: there `Command` forks, copying the worker's page
//! tables for every task (0.52× of `xargs -P 1` against 0.87× with `posix_spawn`,
//! BENCHMARKS.md). Calling `posix_spawnp` here takes the fast way in both builds.
//!
//! glibc's `posix_spawn` starts the child with `CLONE_VM | CLONE_VFORK` and reports a
//! failed `exec` (or `chdir`) as its own error, as `Command::spawn` does.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// What to start: `program` (looked up in `PATH` when it has no slash) with `args`
/// (`argv[0]` included), the worker's own environment with `env` set over it (later pairs
/// win), in `cwd` if given, stdin `/dev/null`, stdout and stderr both on `output`, in a
/// new process group, with every signal's default action for SIGPIPE (the worker ignores
/// it) and nothing blocked.
pub struct Spawn<'a> {
    pub program: &'a OsStr,
    pub args: &'a [&'a OsStr],
    pub env: &'a [(OsString, OsString)],
    pub cwd: Option<&'a str>,
    pub output: BorrowedFd<'a>,
}

/// Starts it and returns the child's pid, which is also its process group's id.
pub fn spawn(what: &Spawn) -> io::Result<u32> {
    let program = c_string(what.program)?;
    let args = what
        .args
        .iter()
        .map(|arg| c_string(arg))
        .collect::<io::Result<Vec<_>>>()?;
    let env = environment(what.env)?;
    // Entered by descriptor: `posix_spawn_file_actions_addchdir_np` is declared weak by
    // the standard library, and a statically linked, LTO-built binary then linked none
    // (a call through a null pointer); `addfchdir_np` is referenced by this code alone.
    let cwd = what.cwd.map(open_directory).transpose()?;
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());

    let mut actions = FileActions::new()?;
    let out = what.output.as_raw_fd();
    // SAFETY: `actions` is initialized; the paths are NUL-terminated and outlive the call.
    unsafe {
        check(libc::posix_spawn_file_actions_adddup2(
            actions.as_ptr(),
            out,
            1,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(
            actions.as_ptr(),
            out,
            2,
        ))?;
        // After the dups: the output's descriptor may have been 0.
        check(libc::posix_spawn_file_actions_addopen(
            actions.as_ptr(),
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        ))?;
        if let Some(dir) = &cwd {
            check(libc::posix_spawn_file_actions_addfchdir_np(
                actions.as_ptr(),
                dir.as_raw_fd(),
            ))?;
        }
    }
    let mut attributes = Attributes::new()?;
    // SAFETY: `attributes` is initialized; the signal sets are initialized before use.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        check(libc::posix_spawnattr_setsigmask(attributes.as_ptr(), &none))?;
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        check(libc::posix_spawnattr_setsigdefault(
            attributes.as_ptr(),
            &pipe,
        ))?;
        check(libc::posix_spawnattr_setpgroup(attributes.as_ptr(), 0))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            attributes.as_ptr(),
            flags as libc::c_short,
        ))?;
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call; argv and envp are NULL-terminated
    // arrays of NUL-terminated strings that outlive it.
    check(unsafe {
        libc::posix_spawnp(
            &mut pid,
            program.as_ptr(),
            actions.as_ptr(),
            attributes.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid as u32)
}

/// The worker's environment with `overrides` applied, as `KEY=VALUE` strings.
fn environment(overrides: &[(OsString, OsString)]) -> io::Result<Vec<CString>> {
    let mut merged: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (key, value) in overrides {
        merged.insert(key.clone(), value.clone());
    }
    merged
        .into_iter()
        .map(|(key, value)| {
            if key.is_empty() || key.as_bytes().contains(&b'=') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the variable name {:?} cannot be set",
                        key.to_string_lossy()
                    ),
                ));
            }
            let mut pair = key.into_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).map_err(nul_error)
        })
        .collect()
}

/// The task's directory, open for `fchdir` only (close-on-exec: the child enters it before
/// its `exec` closes it).
fn open_directory(dir: &str) -> io::Result<OwnedFd> {
    let path = c_string(OsStr::new(dir))?;
    // SAFETY: a NUL-terminated path; the descriptor returned is ours.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(nul_error)
}

fn nul_error(_: std::ffi::NulError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a NUL byte in an argument or a variable",
    )
}

/// `posix_spawn`'s functions return an error number instead of setting `errno`.
fn check(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

/// An initialized `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: zeroed storage, initialized by the call before any other use.
        let mut actions = Box::new(unsafe { std::mem::zeroed() });
        check(unsafe { libc::posix_spawn_file_actions_init(&mut *actions) })?;
        Ok(FileActions(actions))
    }

    fn as_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        &mut *self.0
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(self.as_ptr());
        }
    }
}

/// An initialized `posix_spawnattr_t`, destroyed on drop.
struct Attributes(Box<libc::posix_spawnattr_t>);

impl Attributes {
    fn new() -> io::Result<Attributes> {
        // SAFETY: zeroed storage, initialized by the call before any other use.
        let mut attributes = Box::new(unsafe { std::mem::zeroed() });
        check(unsafe { libc::posix_spawnattr_init(&mut *attributes) })?;
        Ok(Attributes(attributes))
    }

    fn as_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        &mut *self.0
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe {
            libc::posix_spawnattr_destroy(self.as_ptr());
        }
    }
}
