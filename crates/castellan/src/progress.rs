//! Progress on long operations, on stderr and only where stderr is a terminal: piped or
//! redirected output (scripts, CI, `2>log`) gets none of it, so what it reads stays the
//! command's answer and its logs.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running count (`scanning 12034 files`) with a spinner, drawn on stderr when it is a
/// terminal; hidden otherwise (counting still works, nothing is drawn). Clear it with
/// `finish_and_clear` once done.
pub fn counter(doing: &str, things: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} {doing} {{pos}} {things} ({{elapsed}})"
    )) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    // Drawn at once, not only at the first tick: a short run still shows what it did.
    bar.tick();
    bar
}
