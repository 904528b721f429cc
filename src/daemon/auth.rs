//! Who may talk to the daemon. Every connection's peer credentials (from the kernel, via
//! `SO_PEERCRED`) are checked before anything it sends is read: the daemon's own user and
//! root may connect, and with `--allow-group` the members of that group (as the peer's
//! primary group or one of its supplementary groups).

use std::ffi::CString;

use anyhow::{Context, bail};

#[derive(Debug, Clone)]
pub struct Access {
    owner: u32,
    group: Option<(String, u32)>,
}

/// Who a connection comes from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Access {
    /// The daemon's own user, plus the members of `allow_group` if given.
    pub fn new(allow_group: Option<&str>) -> anyhow::Result<Access> {
        let group = match allow_group {
            None => None,
            Some(name) => Some((name.to_string(), group_id(name)?)),
        };
        Ok(Access {
            owner: crate::paths::current_uid(),
            group,
        })
    }

    pub fn allows(&self, peer: &Peer) -> bool {
        if peer.uid == 0 || peer.uid == self.owner {
            return true;
        }
        let Some((_, gid)) = &self.group else {
            return false;
        };
        peer.gid == *gid
            || peer
                .pid
                .is_some_and(|pid| supplementary_groups(pid).contains(gid))
    }
}

/// Resolves a group name (or a numeric id) to its gid.
fn group_id(name: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let c_name = CString::new(name).context("group names cannot contain NUL")?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buffer` outlives it.
    let status = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() {
        bail!("no group named '{name}' (--allow-group)");
    }
    Ok(group.gr_gid)
}

/// The supplementary groups of process `pid`, from /proc (empty if it cannot be read).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_root_are_allowed_others_are_not() {
        let access = Access::new(None).unwrap();
        let me = crate::paths::current_uid();
        assert!(access.allows(&Peer {
            uid: me,
            gid: 1,
            pid: None
        }));
        assert!(access.allows(&Peer {
            uid: 0,
            gid: 0,
            pid: None
        }));
        let stranger = Peer {
            uid: me.wrapping_add(4242),
            gid: 4242,
            pid: None,
        };
        assert!(!access.allows(&stranger));
    }

    #[test]
    fn an_allowed_group_admits_its_members() {
        let access = Access::new(Some("4242")).unwrap();
        let me = crate::paths::current_uid();
        assert!(access.allows(&Peer {
            uid: me.wrapping_add(1),
            gid: 4242,
            pid: None
        }));
        assert!(!access.allows(&Peer {
            uid: me.wrapping_add(1),
            gid: 7,
            pid: None
        }));
        assert!(Access::new(Some("no-such-group-here")).is_err());
    }
}
