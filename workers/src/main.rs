//! `retentionos-workers`: the worker process and its ops commands.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    workers::cli::entrypoint()
}
