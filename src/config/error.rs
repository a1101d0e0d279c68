//! Configuration errors: every problem is a [`Diagnostic`] that names the
//! file, the 1-based line and column, the dotted key and what is accepted.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::exit::ExitStatus;

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The configuration file the problem is in.
    pub path: PathBuf,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Dotted key, e.g. `vrrp.priority` or `vrrp.virtual_ips[1]`; `None` for
    /// syntax errors that belong to no key.
    pub key: Option<String>,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic located at the start of `span` (byte offsets into `text`).
    pub fn at(
        text: &str,
        path: &Path,
        span: Range<usize>,
        key: Option<String>,
        message: String,
    ) -> Self {
        let (line, column) = line_column(text, span.start);
        Diagnostic {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, unreadable).
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read {
        /// The file that was to be read.
        path: PathBuf,
        /// Why reading it failed (e.g. `NotFound`, `PermissionDenied`).
        #[source]
        source: io::Error,
    },
    /// The file was read but is not a valid configuration; at least one
    /// diagnostic, in the order found.
    #[error("{}", DisplayLines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The diagnostics of an invalid file; empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(diagnostics) => diagnostics,
        }
    }

    /// What the CLI exits with: EX_NOINPUT (66) when the file cannot be
    /// read, EX_CONFIG (78) when its content is wrong.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ConfigError::Read { .. } => ExitStatus::NoInput,
            ConfigError::Invalid(_) => ExitStatus::Config,
        }
    }
}

struct DisplayLines<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// 1-based (line, column) of a byte offset; the column counts characters.
/// Offsets past the end or inside a UTF-8 sequence are clamped, never a panic.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_is_one_based_and_counts_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "é" is two bytes: the '=' after it (byte 10) is the fourth character.
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn line_column_clamps_offsets_it_cannot_place() {
        let text = "é";
        assert_eq!(line_column(text, 1), (1, 1));
        assert_eq!(line_column(text, 99), (1, 2));
        assert_eq!(line_column("", 5), (1, 1));
    }

    #[test]
    fn diagnostic_display_is_file_line_col_key_message() {
        let d = Diagnostic {
            path: PathBuf::from("/etc/x.toml"),
            line: 7,
            column: 12,
            key: Some("vrrp.priority".into()),
            message: "0 is out of range".into(),
        };
        assert_eq!(
            d.to_string(),
            "/etc/x.toml:7:12: vrrp.priority: 0 is out of range"
        );
    }
}
