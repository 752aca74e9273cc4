//! One error type for the whole loader: every problem in a compose file is
//! reported as one line, `FILE:LINE: KEY.PATH: message`, so a user can jump
//! straight to it.

use std::fmt;

/// A problem in a compose file, located by file, line and key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeError {
    pub file: String,
    /// 1-based; 0 when the problem has no single line (e.g. a missing file).
    pub line: usize,
    /// Dotted key path such as `services.web.deploy.replicas`; may be empty.
    pub path: String,
    pub message: String,
}

impl ComposeError {
    pub fn new(file: &str, line: usize, path: &str, message: impl Into<String>) -> Self {
        ComposeError {
            file: file.to_string(),
            line,
            path: path.to_string(),
            message: one_line(&message.into()),
        }
    }
}

/// Keeps the promise of one line per error, whatever a lower layer said.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ComposeError {}

pub type Result<T> = std::result::Result<T, ComposeError>;
