//! `accord completions SHELL`: the shell's completion script for every
//! command and flag, generated from the command line's own definition.

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    pub shell: Shell,
}

/// Writes the script for `accord` (the whole command line, `whole`) to stdout.
pub fn run(args: CompletionsArgs, mut whole: clap::Command) {
    clap_complete::generate(args.shell, &mut whole, "accord", &mut std::io::stdout());
}
