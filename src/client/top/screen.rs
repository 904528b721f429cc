//! The terminal while `vapora top` runs: raw mode (keys arrive one by one, Ctrl-C as a
//! key), the alternate screen (what was on the terminal comes back afterwards) and no
//! cursor. Put back on every way out: [`Screen`]'s drop (quitting, an error), the panic
//! hook (a panic in any of top's threads), and the signals the loop turns into a quit.

use std::io::{self, BufWriter, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

/// Whether the terminal is in top's state: restoring is done once, whoever asks first.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The exit status after a panic, as Rust's own.
const PANICKED: i32 = 101;

pub type Term = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// The terminal, in top's state until dropped.
pub struct Screen {
    pub terminal: Term,
}

impl Screen {
    pub fn enter() -> io::Result<Screen> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = enable_raw_mode()
            .and_then(|()| execute!(io::stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(BufWriter::new(io::stdout()))));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(error) => {
                restore();
                Err(error)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back: the screen as it was, the cursor, line editing and signals.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
    }
}

/// On a panic, in any thread: the terminal first, so that the message is readable, then
/// the usual report, then the exit (a loop left drawing over a restored terminal, or
/// helpers gone, is no dashboard).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
            std::process::exit(PANICKED);
        }));
    });
}
