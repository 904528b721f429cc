//! A progress line on stderr for long work: `task add --stdin` over many lines, `task wait`
//! on several tasks.
//!
//! Shown only to a person watching: when stderr is a terminal and neither `--json` nor
//! `-q` was given. Never in a pipe or a log file, and never on stdout, which carries the
//! command's answer (ids, statuses) and must stay exactly what a script reads.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Fewer tasks than this are added without a progress line: it would only flash.
pub const ADD_PROGRESS_FROM: usize = 2_000;

/// How often the line is redrawn while nothing changes (its rate and time left move on).
const TICK: Duration = Duration::from_millis(500);

/// A progress line, or nothing when nobody would see it.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// For adding `total` tasks.
    pub fn adding(total: usize, json: bool, quiet: bool) -> Progress {
        if total < ADD_PROGRESS_FROM {
            return Progress(None);
        }
        Progress::shown(
            total,
            json,
            quiet,
            "adding {wide_bar} {pos}/{len} added, {rate}, {eta} left",
        )
    }

    /// For waiting until `total` tasks end; the message counts how they ended.
    pub fn waiting(total: usize, json: bool, quiet: bool) -> Progress {
        if total < 2 {
            return Progress(None);
        }
        let progress = Progress::shown(
            total,
            json,
            quiet,
            "waiting {wide_bar} {pos}/{len} ended ({msg}), {rate}, {eta} left",
        );
        progress.ended(0, 0, 0);
        progress
    }

    fn shown(total: usize, json: bool, quiet: bool, template: &str) -> Progress {
        if json || quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let Ok(style) = ProgressStyle::with_template(template) else {
            return Progress(None);
        };
        let style = style.with_key("rate", |state: &ProgressState, out: &mut dyn fmt::Write| {
            let _ = write!(out, "{}", rate(state.per_sec()));
        });
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
            .with_style(style.progress_chars("=> "));
        bar.enable_steady_tick(TICK);
        Progress(Some(bar))
    }

    /// Whether anyone sees it.
    pub fn is_shown(&self) -> bool {
        self.0.is_some()
    }

    /// `n` more are through.
    pub fn advance(&self, n: usize) {
        if let Some(bar) = &self.0 {
            bar.inc(n as u64);
        }
    }

    /// How many have ended so far, and how.
    pub fn ended(&self, done: usize, failed: usize, cancelled: usize) {
        if let Some(bar) = &self.0 {
            bar.set_position((done + failed + cancelled) as u64);
            let mut how = format!("{done} done, {failed} failed");
            if cancelled > 0 {
                how.push_str(&format!(", {cancelled} cancelled"));
            }
            bar.set_message(how);
        }
    }

    /// Leaves the line in its final state (what was reached, how fast).
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }
}

impl Drop for Progress {
    /// An error ends the command early: the line stops where it was, and the error
    /// message that follows starts on a line of its own.
    fn drop(&mut self) {
        if let Some(bar) = &self.0
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

/// A rate for people: whole numbers from 10 a second, one decimal below.
fn rate(per_second: f64) -> String {
    if !per_second.is_finite() {
        return "-/s".into();
    }
    if per_second >= 10.0 {
        format!("{per_second:.0}/s")
    } else {
        format!("{per_second:.1}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(rate(40_311.586), "40312/s");
        assert_eq!(rate(0.6641), "0.7/s");
        assert_eq!(rate(f64::INFINITY), "-/s");
    }
}
