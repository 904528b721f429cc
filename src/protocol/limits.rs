//! Input rules both sides check: the client before sending (so `--stdin` can refuse a bad
//! line before anything is added), the daemon on receipt (it trusts no client).
//!
//! Sizes an operator may tighten (or, within ceilings that keep a task inside any frame,
//! widen) are in [`Limits`]; the daemon publishes its own in `vapora ping`, which is how
//! `--stdin` checks lines against the daemon it talks to.

use serde::{Deserialize, Serialize};

/// Default longest task title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Default longest payload, result or failure reason, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// Default most tasks in one `AddTasks` request.
pub const MAX_BATCH: usize = 10_000;
/// Ceilings of the configurable limits: a task at all of them (title, and payload, result
/// and reason at the text limit) still fits in the largest frame. The daemon also checks
/// its limits against its own `--max-frame` at start-up ([`Limits::check_fits`]).
pub const TITLE_CEILING: usize = 64 * 1024;
pub const TEXT_CEILING: usize = 5 * 1024 * 1024;
pub const BATCH_CEILING: usize = MAX_BATCH;
/// Room in a frame for everything in a task besides its title and texts (capabilities,
/// dependencies, the working directory and the variables at their limits take about 90 KiB).
const TASK_OVERHEAD: usize = 128 * 1024;

/// The daemon's size limits (`--max-title`, `--max-payload`, `--max-batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest task title, in bytes.
    pub title_bytes: u32,
    /// Longest payload, result or failure reason, in bytes.
    pub text_bytes: u32,
    /// Most tasks in one add request.
    pub batch: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            title_bytes: MAX_TITLE_BYTES as u32,
            text_bytes: MAX_TEXT_BYTES as u32,
            batch: MAX_BATCH as u32,
        }
    }
}

impl Limits {
    /// The most any daemon may be configured to accept.
    pub const CEILINGS: Limits = Limits {
        title_bytes: TITLE_CEILING as u32,
        text_bytes: TEXT_CEILING as u32,
        batch: BATCH_CEILING as u32,
    };

    /// Checks a free-text field (payload, result, reason) against `text_bytes`.
    pub fn check_text(&self, what: &str, text: &str) -> Result<(), String> {
        let max = self.text_bytes as usize;
        if text.len() > max {
            return Err(format!(
                "{what} is {} bytes, more than the limit of {max}",
                text.len()
            ));
        }
        Ok(())
    }

    /// Checks that the largest task these limits allow (its title, and a payload, result
    /// and reason at the text limit) fits in a frame of `max_frame` bytes, so that every
    /// task the daemon accepts can also be shown.
    pub fn check_fits(&self, max_frame: usize) -> Result<(), String> {
        let largest = self.title_bytes as usize + 3 * self.text_bytes as usize + TASK_OVERHEAD;
        if largest > max_frame {
            return Err(format!(
                "a task at these limits (title {} bytes, payload, result and reason {} bytes \
                 each) would not fit in a frame of {max_frame} bytes: lower --max-payload or \
                 raise --max-frame",
                self.title_bytes, self.text_bytes
            ));
        }
        Ok(())
    }

    /// Checks the size of an add request against `batch`.
    pub fn check_batch(&self, tasks: usize) -> Result<(), String> {
        if tasks > self.batch as usize {
            return Err(format!(
                "{tasks} tasks in one request; the limit is {}",
                self.batch
            ));
        }
        Ok(())
    }
}

/// Most capabilities on a task or an agent.
pub const MAX_CAPABILITIES: usize = 64;
/// Most task ids one `task wait` may name (duplicates count once).
pub const MAX_WAIT_IDS: usize = 10_000;
/// Bounds of `--max-attempts`.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The latest time a task may be scheduled for: the end of year 9999 (what RFC 3339 can
/// write), in milliseconds since the epoch.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;
/// The longest lease a task may ask for: a year.
pub const MAX_LEASE_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// Most `--after` dependencies of one task.
pub const MAX_DEPENDENCIES: usize = 1000;
/// The longest working directory a task may name, in bytes (Linux's `PATH_MAX`).
pub const MAX_CWD_BYTES: usize = 4096;
/// Most variables one task may set.
pub const MAX_ENV_VARS: usize = 256;
/// Most bytes of variables (names and values) one task may set.
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// The longest a task may ask one attempt to run: a year.
pub const MAX_TIMEOUT_MS: u64 = MAX_LEASE_MS;
/// Bounds of `--max-tasks`.
pub const MAX_TASKS_LIMIT: u32 = 100_000;
/// The most output one `AppendOutput` carries and one `Output` answer holds.
pub const MAX_OUTPUT_CHUNK: usize = 256 * 1024;
/// The daemon's default `--max-log`: output kept per task.
pub const DEFAULT_MAX_LOG: u64 = 8 * 1024 * 1024;

/// Checks an agent, queue or capability name: `[A-Za-z0-9._-]{1,64}`. Names appear in
/// tables, metrics labels and file names, so they stay plain.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
        // The name as sent: the client shows every message through its one escaping
        // function (`client::escape`), which escaping here would double (`\\u{1b}`).
        return Err(format!(
            "invalid {what} name '{name}': use 1 to 64 of A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

/// Sorts and deduplicates a capability list after checking each name.
pub fn normalize_capabilities(caps: &mut Vec<String>) -> Result<(), String> {
    for cap in caps.iter() {
        check_name("capability", cap)?;
    }
    caps.sort();
    caps.dedup();
    if caps.len() > MAX_CAPABILITIES {
        return Err(format!("more than {MAX_CAPABILITIES} capabilities"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        assert!(check_name("agent", "w1.gpu_a-2").is_ok());
        assert!(check_name("agent", "").is_err());
        assert!(check_name("agent", "has space").is_err());
        assert!(check_name("agent", &"a".repeat(65)).is_err());
        assert!(check_name("agent", &"a".repeat(64)).is_ok());
    }

    #[test]
    fn frames_hold_the_largest_task() {
        use crate::protocol::codec::{DEFAULT_MAX_FRAME, MIN_MAX_FRAME};
        assert!(Limits::default().check_fits(MIN_MAX_FRAME).is_ok());
        assert!(Limits::CEILINGS.check_fits(DEFAULT_MAX_FRAME).is_ok());
        assert!(Limits::CEILINGS.check_fits(MIN_MAX_FRAME).is_err());
    }
}
