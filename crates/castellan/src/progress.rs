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

/// Where log lines go: stderr, written whole and with any spinner lifted out of the way
/// while they are (so a line never lands in the middle of a spinner's redraw).
#[derive(Clone, Debug)]
pub struct LogWriter {
    multi: indicatif::MultiProgress,
}

impl LogWriter {
    /// Spinners drawn on stderr when `terminal`, none otherwise.
    pub fn new(terminal: bool) -> LogWriter {
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        LogWriter {
            multi: indicatif::MultiProgress::with_draw_target(target),
        }
    }

    /// The layer that draws a spinner for each wait on a Proxmox VE task.
    pub fn spinners(&self) -> TaskSpinners {
        TaskSpinners {
            multi: self.multi.clone(),
        }
    }
}

/// One log line being written; it goes out when dropped (tracing makes one per event).
#[derive(Debug)]
pub struct LogLine {
    multi: indicatif::MultiProgress,
    buf: Vec<u8>,
}

impl std::io::Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &buf);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

/// Draws a spinner for every `pve_task` span (a wait on a Proxmox VE task: a start, a
/// backup, a restore...) while it is open: `⠋ waiting for the backup of 101 on pve-01
/// (12s)`. Installed only when stderr is a terminal.
#[derive(Debug)]
pub struct TaskSpinners {
    multi: indicatif::MultiProgress,
}

struct Spinner(ProgressBar);

#[derive(Default)]
struct TaskFields {
    kind: String,
    id: String,
    node: String,
}

impl tracing::field::Visit for TaskFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "kind" => value.clone_into(&mut self.kind),
            "id" => value.clone_into(&mut self.id),
            "node" => value.clone_into(&mut self.node),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// What a wait on a task of `kind` is, in words.
pub fn task_words(kind: &str, id: &str, node: &str) -> String {
    let what = match kind {
        "vzdump" => "the backup",
        "qmstart" | "vzstart" => "the start",
        "qmshutdown" | "vzshutdown" => "the shutdown",
        "qmstop" | "vzstop" => "the stop",
        "qmreboot" | "vzreboot" => "the reboot",
        "qmdestroy" | "vzdestroy" => "the destruction",
        "qmcreate" | "vzcreate" => "the creation",
        "qmrestore" | "vzrestore" => "the restore",
        "qmclone" | "vzclone" => "the clone",
        "resize" | "qmresize" => "the resize",
        "imgdel" => "the volume removal",
        _ => "",
    };
    let subject = if id.is_empty() {
        format!("on {node}")
    } else {
        format!("of {id} on {node}")
    };
    if what.is_empty() {
        format!("task {kind} {subject}")
    } else {
        format!("{what} {subject} ({kind})")
    }
}

impl<S> tracing_subscriber::Layer<S> for TaskSpinners
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "pve_task" {
            return;
        }
        let mut f = TaskFields::default();
        attrs.record(&mut f);
        let bar = self.multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} waiting for {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(task_words(&f.kind, &f.id, &f.node));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.tick();
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Spinner(bar));
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(Spinner(bar)) = span.extensions_mut().remove::<Spinner>()
        {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_waits_read_as_words() {
        assert_eq!(
            task_words("vzdump", "101", "pve-01"),
            "the backup of 101 on pve-01 (vzdump)"
        );
        assert_eq!(
            task_words("qmstart", "7", "n"),
            "the start of 7 on n (qmstart)"
        );
        assert_eq!(task_words("aptupdate", "", "n"), "task aptupdate on n");
    }
}
