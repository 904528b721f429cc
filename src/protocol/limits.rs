//! Input rules both sides check: the client before sending (so `--stdin` can refuse a bad
//! line before anything is added), the daemon on receipt (it trusts no client).
//!
//! Sizes an operator may tighten (or, within ceilings that keep a task inside any frame,
//! widen) are in [`Limits`]; the daemon publishes its own in `vapora ping`, which is how
//! `--stdin` checks lines against the daemon it talks to.

use serde::{Deserialize, Serialize};

use super::types::NewTask;

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
/// Room in a frame for everything in a task besides its title and texts.
const TASK_OVERHEAD: usize = 64 * 1024;

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
/// Bounds of `--max-attempts`.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The latest time a task may be scheduled for: the end of year 9999 (what RFC 3339 can
/// write), in milliseconds since the epoch.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;
/// The longest lease a task may ask for: a year.
pub const MAX_LEASE_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// Most `--after` dependencies of one task.
pub const MAX_DEPENDENCIES: usize = 1000;
/// Bounds of `--max-tasks`.
pub const MAX_TASKS_LIMIT: u32 = 100_000;

/// Checks an agent, queue or capability name: `[A-Za-z0-9._-]{1,64}`. Names appear in
/// tables, metrics labels and file names, so they stay plain.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
        return Err(format!(
            "invalid {what} name '{}': use 1 to 64 of A-Z a-z 0-9 . _ -",
            name.escape_debug()
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

impl NewTask {
    /// Validates every field against `limits` and normalizes `requires`.
    pub fn validate(&mut self, limits: &Limits) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("the title is empty".into());
        }
        if self.title.len() > limits.title_bytes as usize {
            return Err(format!(
                "the title is {} bytes, more than the limit of {}",
                self.title.len(),
                limits.title_bytes
            ));
        }
        if self.title.contains(['\n', '\r']) {
            return Err("the title contains a line break".into());
        }
        limits.check_text("the payload", &self.payload)?;
        check_name("queue", &self.queue)?;
        normalize_capabilities(&mut self.requires)?;
        self.after.sort_unstable();
        self.after.dedup();
        if self.after.len() > MAX_DEPENDENCIES {
            return Err(format!("more than {MAX_DEPENDENCIES} dependencies"));
        }
        if let Some(lease) = self.lease_ms
            && (lease == 0 || lease > MAX_LEASE_MS)
        {
            return Err("the lease must be longer than zero and at most a year".into());
        }
        if self.run_at.is_some_and(|at| at > MAX_TIME_MS) {
            return Err("the start time is after the year 9999".into());
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(format!(
                "max attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, not {}",
                self.max_attempts
            ));
        }
        Ok(())
    }
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
    fn validate_normalizes_requirements() {
        let mut task = NewTask::new("t");
        task.requires = vec!["b".into(), "a".into(), "b".into()];
        task.validate(&Limits::default()).unwrap();
        assert_eq!(task.requires, vec!["a", "b"]);
    }

    #[test]
    fn validate_refuses_bad_fields() {
        for mutate in [
            (|t: &mut NewTask| t.title = " ".into()) as fn(&mut NewTask),
            |t| t.title = "x".repeat(MAX_TITLE_BYTES + 1),
            |t| t.queue = "no/slash".into(),
            |t| t.max_attempts = 0,
            |t| t.requires = vec!["bad cap".into()],
            |t| t.payload = "x".repeat(MAX_TEXT_BYTES + 1),
        ] {
            let mut task = NewTask::new("t");
            mutate(&mut task);
            assert!(
                task.validate(&Limits::default()).is_err(),
                "{task:?} should be refused"
            );
        }
    }

    #[test]
    fn tighter_limits_refuse_what_the_defaults_accept() {
        let tight = Limits {
            title_bytes: 4,
            text_bytes: 2,
            batch: 3,
        };
        let mut task = NewTask::new("12345");
        assert!(task.validate(&Limits::default()).is_ok());
        assert!(task.validate(&tight).unwrap_err().contains("limit of 4"));
        task.title = "1234".into();
        task.payload = "abc".into();
        assert!(task.validate(&tight).unwrap_err().contains("limit of 2"));
        assert!(tight.check_batch(3).is_ok());
        assert!(tight.check_batch(4).unwrap_err().contains("limit is 3"));
    }

    #[test]
    fn frames_hold_the_largest_task() {
        use crate::protocol::codec::{DEFAULT_MAX_FRAME, MIN_MAX_FRAME};
        assert!(Limits::default().check_fits(MIN_MAX_FRAME).is_ok());
        assert!(Limits::CEILINGS.check_fits(DEFAULT_MAX_FRAME).is_ok());
        assert!(Limits::CEILINGS.check_fits(MIN_MAX_FRAME).is_err());
    }
}
