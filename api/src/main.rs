//! `retentionos-api`: the HTTP API and its admin commands.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    api::cli::entrypoint()
}
