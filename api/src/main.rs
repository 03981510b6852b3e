//! `retentionos-api`: the HTTP API and its admin commands.

fn main() -> std::process::ExitCode {
    api::cli::entrypoint()
}
