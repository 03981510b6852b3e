//! `retentionos-workers`: the worker process and its ops commands.

fn main() -> std::process::ExitCode {
    workers::cli::entrypoint()
}
