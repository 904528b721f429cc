//! Writes the man pages (vapora.1 and one page per subcommand) into the directory given:
//! `cargo run --example manpages -- man`, which scripts/update-generated.sh runs. The pages
//! are rendered by `vapora::client::manpages`, from the CLI definition.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example manpages -- DIR");
        return ExitCode::from(2);
    };
    let dir = Path::new(&dir);
    match vapora::client::manpages::write(dir) {
        Ok(pages) => {
            println!("{} man pages written into {}", pages.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot write the man pages into {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
