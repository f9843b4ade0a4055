//! The `prismwatch` binary; everything lives in the library so tests can reach it.

fn main() -> std::process::ExitCode {
    prismwatch::cli::main()
}
