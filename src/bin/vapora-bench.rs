//! `vapora-bench`: the benchmark tool (see `vapora::bench` and BENCHMARKS.md).

use clap::Parser;

fn main() {
    let args = vapora::bench::BenchArgs::parse();
    if let Err(error) = vapora::bench::run(args) {
        eprintln!("vapora-bench: {error:#}");
        std::process::exit(1);
    }
}
