//! `rpm2 deploy`: PM2's deploy over ssh and git; every behaviour is [`crate::deploy::deploy`].

use super::{Shown, Ui};
use anyhow::{Context, Result};

/// `rpm2 deploy [file] <env> [command...]`: exit 0 when every host succeeded (or for the help), 1
/// otherwise (the failure line is already printed).
pub(super) fn deploy(ui: &Ui, words: &[String]) -> Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let outcome = crate::deploy::deploy(words, &cwd, ui.paint)?;
    if outcome.ok() {
        Ok(0)
    } else {
        Err(Shown.into())
    }
}
