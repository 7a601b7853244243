//! The `castellan` binary: parse arguments, set up logging, run, map the outcome to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = castellan::Cli::parse();
    // The demo tells its story on stdout; its logs would drown it unless asked for.
    let default_filter = match cli.command {
        castellan::Command::Demo { .. } => "warn",
        // Operator tools: their answer is on stdout; only trouble belongs on stderr.
        castellan::Command::Op { .. }
        | castellan::Command::Signers { .. }
        | castellan::Command::Audit { .. }
        | castellan::Command::Journal { .. }
        | castellan::Command::Ledger { .. }
        | castellan::Command::Completions { .. }
        | castellan::Command::Manpages { .. } => "warn",
        _ => "info",
    };
    castellan::logging::init(&cli.log, default_filter);
    let error_code = cli.command.error_exit_code();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error_code);
        }
    };
    match runtime.block_on(castellan::run(cli)) {
        Ok(code) => code,
        // The reader of our output went away (`castellan plan | head`): not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", castellan::error_text(&e));
            ExitCode::from(error_code)
        }
    }
}
