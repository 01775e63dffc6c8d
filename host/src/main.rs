//! The `impressox` binary: parse arguments, load configuration, hand over to the library.

/// mimalloc rather than glibc's malloc: the workers allocate many small, short-lived
/// objects across threads (JSON documents, HTTP requests), where glibc's arenas showed
/// up as a fifth of the CPU in the notify benchmark's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    impressox_host::cli::main()
}
