//! Input rules both sides check: the client before sending (so `--stdin` can refuse a bad
//! line before anything is added), the daemon on receipt (it trusts no client).

use super::types::NewTask;

/// Longest task title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest payload, result or failure reason, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// Most tasks in one `AddTasks` request.
pub const MAX_BATCH: usize = 10_000;
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

/// Checks a free-text field against [`MAX_TEXT_BYTES`].
pub fn check_text(what: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "{what} is {} bytes, more than the limit of {MAX_TEXT_BYTES}",
            text.len()
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
    /// Validates every field and normalizes `requires`.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("the title is empty".into());
        }
        if self.title.len() > MAX_TITLE_BYTES {
            return Err(format!(
                "the title is {} bytes, more than the limit of {MAX_TITLE_BYTES}",
                self.title.len()
            ));
        }
        if self.title.contains(['\n', '\r']) {
            return Err("the title contains a line break".into());
        }
        check_text("the payload", &self.payload)?;
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
        task.validate().unwrap();
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
        ] {
            let mut task = NewTask::new("t");
            mutate(&mut task);
            assert!(task.validate().is_err(), "{task:?} should be refused");
        }
    }
}
