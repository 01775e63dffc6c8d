//! The `impressox` binary: parse arguments, load configuration, hand over to the library.

fn main() -> std::process::ExitCode {
    impressox_host::cli::main()
}
