//! Shell completions and manual pages, generated from the command-line definition itself
//! (so they never drift from it): `castellan completions SHELL` prints a completion script,
//! `castellan manpages --out-dir DIR` writes `castellan.1` and one page per subcommand
//! (`castellan-agent.1`, `castellan-op-sign.1`, ...), as a package installs them.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "castellan", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the manual pages into `dir` (made if missing); prints each file written.
pub fn manpages(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, "castellan", dir, &mut written)?;
    for file in written {
        crate::outln!("{}", file.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `cmd`'s page as `<name>.1`, then its subcommands' as `<name>-<sub>.1`.
fn page(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let named = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    clap_mangen::Man::new(named)
        .render(&mut roff)
        .with_context(|| format!("cannot render the manual page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    // Written beside, then renamed over: a link planted at the name is replaced, never
    // followed.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(&roff)
        .with_context(|| format!("cannot write {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
