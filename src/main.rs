//! The `arbiter` binary: [`cli`] parses, calls the library and prints; this file only
//! starts it.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
