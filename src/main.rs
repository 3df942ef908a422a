use std::process::ExitCode;

use clap::Parser;
use wosool::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // A one-shot command piped into `head` should end quietly when the reader goes away, as Unix tools
        // do, not panic on a broken pipe. The server keeps Rust's default (SIGPIPE ignored): a closed log
        // pipe must never kill it.
        // SAFETY: `signal` only changes the process-wide disposition of SIGPIPE. Sockets are unaffected: on
        // Linux, std (and so tokio) sends with MSG_NOSIGNAL, so a peer closing a connection stays an error.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli.execute().await
}
