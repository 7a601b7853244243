//! Text from outside the process (a hub's answer, a report, a relayed op's author),
//! shown in a log or on a terminal with control characters escaped and its length
//! bounded: it can neither move the cursor nor forge a log line.

use std::fmt;

/// Most characters shown.
pub const MAX_SHOWN: usize = 512;

/// Displays its text with control characters escaped (`\n`, `\u{1b}`), cut at
/// [`MAX_SHOWN`] characters (marked with `…`).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_SHOWN {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_bounded() {
        assert_eq!(
            Printable("ok\n\u{1b}[2Jfake line").to_string(),
            "ok\\n\\u{1b}[2Jfake line"
        );
        let long = "x".repeat(MAX_SHOWN + 10);
        let shown = Printable(&long).to_string();
        assert_eq!(shown.chars().count(), MAX_SHOWN + 1);
        assert!(shown.ends_with('…'));
    }
}
