//! Who must answer on the socket: the client checks the daemon's uid (`SO_PEERCRED`) before
//! it sends anything. On the default per-user socket that is always the user's own uid (in
//! a shared temp dir, another user could serve a socket there first); on an explicit
//! `--socket` nobody is required unless `--expect-uid` names who.

use std::ffi::{CStr, CString};

use super::exit::CliError;

/// The uid `--expect-uid` names: a number, or a user name from the password database.
pub fn parse_expected_uid(text: &str) -> Result<u32, CliError> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    let name = CString::new(text)
        .map_err(|_| CliError::usage(format!("--expect-uid: invalid user name '{text}'")))?;
    // SAFETY: getpwnam takes a NUL-terminated string and returns a pointer into static
    // storage (or null), read at once; the client is single-threaded.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(CliError::usage(format!(
            "--expect-uid: no user named '{text}' (give a uid or a user name)"
        )));
    }
    // SAFETY: non-null, so it points to a valid passwd entry.
    Ok(unsafe { (*entry).pw_uid })
}

/// `uid 65534 (nobody)`, or `uid 1234` when the uid has no name.
pub fn describe_uid(uid: u32) -> String {
    // SAFETY: as in `parse_expected_uid`; the name is copied out at once.
    let name = unsafe {
        let entry = libc::getpwuid(uid);
        if entry.is_null() || (*entry).pw_name.is_null() {
            None
        } else {
            Some(
                CStr::from_ptr((*entry).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}
