//! What each key means, in each of the dashboard's modes. In raw mode the terminal sends
//! Ctrl-C as a key, not as SIGINT: it quits like `q`, whatever is on the screen.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::Mode;

/// What a key asks the dashboard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Moves the selection by this many rows.
    Move(isize),
    First,
    Last,
    /// Between the running tasks and the agents.
    SwitchFocus,
    /// Opens the selected task's view.
    Show,
    /// Closes the task's view.
    Back,
    /// Asks whether to cancel the selected (or shown) task.
    AskCancel,
    Confirm,
    Deny,
    /// Pauses the selected agent, or resumes it.
    TogglePause,
}

/// How far Page Up and Page Down move.
const PAGE: isize = 10;

/// The action of `key` in `mode`, if it has one.
pub fn action(mode: &Mode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Some(Action::Quit);
    }
    match mode {
        Mode::Confirm { .. } => Some(match key.code {
            KeyCode::Char('y' | 'Y') => Action::Confirm,
            // Anything else keeps the task: a stray key never cancels.
            _ => Action::Deny,
        }),
        Mode::Detail(_) => match key.code {
            KeyCode::Char('q' | 'Q') => Some(Action::Quit),
            KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Left => {
                Some(Action::Back)
            }
            KeyCode::Char('h') => Some(Action::Back),
            KeyCode::Char('c') => Some(Action::AskCancel),
            KeyCode::Char('p') => Some(Action::TogglePause),
            _ => None,
        },
        Mode::Main => match key.code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => Some(Action::Quit),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Move(-1)),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Move(1)),
            KeyCode::PageUp => Some(Action::Move(-PAGE)),
            KeyCode::PageDown => Some(Action::Move(PAGE)),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::First),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Last),
            KeyCode::Tab | KeyCode::BackTab => Some(Action::SwitchFocus),
            KeyCode::Enter => Some(Action::Show),
            KeyCode::Char('c') => Some(Action::AskCancel),
            KeyCode::Char('p') => Some(Action::TogglePause),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn ctrl_c_quits_in_every_mode() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        let confirm = Mode::Confirm {
            id: 1,
            title: String::new(),
            in_detail: false,
        };
        for mode in [Mode::Main, Mode::Detail(1), confirm] {
            assert_eq!(action(&mode, ctrl_c), Some(Action::Quit), "{mode:?}");
        }
    }

    #[test]
    fn only_y_confirms_a_cancel() {
        let confirm = Mode::Confirm {
            id: 1,
            title: String::new(),
            in_detail: true,
        };
        assert_eq!(
            action(&confirm, key(KeyCode::Char('y'))),
            Some(Action::Confirm)
        );
        for code in [
            KeyCode::Char('n'),
            KeyCode::Char('c'),
            KeyCode::Enter,
            KeyCode::Esc,
        ] {
            assert_eq!(action(&confirm, key(code)), Some(Action::Deny));
        }
    }

    #[test]
    fn esc_quits_the_main_view_and_closes_a_task_view() {
        assert_eq!(action(&Mode::Main, key(KeyCode::Esc)), Some(Action::Quit));
        assert_eq!(
            action(&Mode::Detail(3), key(KeyCode::Esc)),
            Some(Action::Back)
        );
        assert_eq!(
            action(&Mode::Main, key(KeyCode::Char('j'))),
            Some(Action::Move(1))
        );
    }
}
