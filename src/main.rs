//! The `arbiter` binary: [`cli`] parses, calls the library and prints; this file only
//! starts it.

mod cli;

/// mimalloc instead of the system allocator: a decision allocates small, short-lived values
/// on every worker thread, which glibc's malloc serves at a tenth of the server's CPU. The
/// `system-allocator` feature keeps the system's, for heap profilers that hook malloc
/// (heaptrack, valgrind's massif).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
