//! The rules a new task must meet: the [`Limits`] and name rules of `limits.rs` applied to
//! a [`NewTask`]. Kept apart from `limits.rs` so that the limits sit below the types that
//! name them (`DaemonInfo` carries `Limits`) and no two protocol modules import each other.

use super::limits::{
    Limits, MAX_ATTEMPTS_LIMIT, MAX_CWD_BYTES, MAX_DEPENDENCIES, MAX_ENV_BYTES, MAX_ENV_VARS,
    MAX_LEASE_MS, MAX_TIME_MS, MAX_TIMEOUT_MS, check_name, normalize_capabilities,
};
use super::types::NewTask;

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
        if let Some(timeout) = self.timeout_ms
            && (timeout == 0 || timeout > MAX_TIMEOUT_MS)
        {
            return Err("the timeout must be longer than zero and at most a year".into());
        }
        if let Some(cwd) = &self.cwd {
            check_cwd(cwd)?;
        }
        check_env(&self.env)?;
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

/// A working directory: an absolute path a process can be given (no NUL), at most
/// [`MAX_CWD_BYTES`]. Whether it exists is for the worker to find out: it may be on
/// another host, or made by a task that runs first.
fn check_cwd(cwd: &str) -> Result<(), String> {
    if !cwd.starts_with('/') {
        return Err(format!(
            "the working directory '{cwd}' is not an absolute path"
        ));
    }
    if cwd.contains('\0') {
        return Err("the working directory contains a NUL character".into());
    }
    if cwd.len() > MAX_CWD_BYTES {
        return Err(format!(
            "the working directory is {} bytes, more than the limit of {MAX_CWD_BYTES}",
            cwd.len()
        ));
    }
    Ok(())
}

/// Variables: names a shell can use (`[A-Za-z_][A-Za-z0-9_]*`), each set once, values
/// without NUL (an environment cannot hold one), at most [`MAX_ENV_VARS`] of them and
/// [`MAX_ENV_BYTES`] in all.
fn check_env(env: &[(String, String)]) -> Result<(), String> {
    if env.len() > MAX_ENV_VARS {
        return Err(format!(
            "{} variables, more than the limit of {MAX_ENV_VARS}",
            env.len()
        ));
    }
    let mut total = 0usize;
    let mut seen = std::collections::HashSet::with_capacity(env.len());
    for (key, value) in env {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "invalid variable name '{key}': use A-Z a-z 0-9 _, not starting with a digit"
            ));
        }
        if value.contains('\0') {
            return Err(format!("the value of {key} contains a NUL character"));
        }
        if !seen.insert(key.as_str()) {
            return Err(format!("the variable {key} is set twice"));
        }
        total += key.len() + value.len();
    }
    if total > MAX_ENV_BYTES {
        return Err(format!(
            "the variables take {total} bytes, more than the limit of {MAX_ENV_BYTES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::limits::{MAX_TEXT_BYTES, MAX_TITLE_BYTES};

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
            |t| t.timeout_ms = Some(0),
            |t| t.timeout_ms = Some(MAX_TIMEOUT_MS + 1),
            |t| t.cwd = Some("relative/dir".into()),
            |t| t.cwd = Some(String::new()),
            |t| t.cwd = Some("/a\0b".into()),
            |t| t.cwd = Some(format!("/{}", "d".repeat(MAX_CWD_BYTES))),
            |t| t.env = vec![("1A".into(), "v".into())],
            |t| t.env = vec![(String::new(), "v".into())],
            |t| t.env = vec![("A-B".into(), "v".into())],
            |t| t.env = vec![("A".into(), "v\0".into())],
            |t| t.env = vec![("A".into(), "1".into()), ("A".into(), "2".into())],
            |t| {
                t.env = (0..=MAX_ENV_VARS)
                    .map(|i| (format!("V{i}"), String::new()))
                    .collect()
            },
            |t| t.env = vec![("BIG".into(), "x".repeat(MAX_ENV_BYTES))],
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
    fn validate_accepts_fields_at_their_limits() {
        let mut task = NewTask::new("t");
        task.timeout_ms = Some(MAX_TIMEOUT_MS);
        task.cwd = Some(format!("/{}", "d".repeat(MAX_CWD_BYTES - 1)));
        task.env = (0..MAX_ENV_VARS)
            .map(|i| (format!("_v{i}"), "é =$'\n".into()))
            .collect();
        task.validate(&Limits::default()).unwrap();
        task.env = vec![("BIG".into(), "x".repeat(MAX_ENV_BYTES - 3))];
        task.validate(&Limits::default()).unwrap();
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
}
