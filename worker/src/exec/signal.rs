//! Signal names as users write them (`SIGTERM`, `TERM`, `15`), shared by
//! the engines that send them.

use std::str::FromStr;

use nix::sys::signal::Signal;

use super::ExecError;

/// Parses a stop signal; `None` or empty means SIGTERM, Docker's default.
pub fn parse_signal(name: Option<&str>) -> Result<Signal, ExecError> {
    let name = match name.map(str::trim) {
        None | Some("") => return Ok(Signal::SIGTERM),
        Some(n) => n,
    };
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad(name));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| bad(name))
}

fn bad(name: &str) -> ExecError {
    ExecError::Rejected(format!(
        "unknown stop signal {name:?}: give a signal name like SIGTERM or SIGINT, or its number"
    ))
}

/// The exit code of a process killed by `signal`, as Docker reports it.
pub fn signal_exit_code(signal: Signal) -> i32 {
    128 + signal as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parse_signal(None).unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal(Some("")).unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal(Some("SIGINT")).unwrap(), Signal::SIGINT);
        assert_eq!(parse_signal(Some("quit")).unwrap(), Signal::SIGQUIT);
        assert_eq!(parse_signal(Some("9")).unwrap(), Signal::SIGKILL);
        assert!(parse_signal(Some("SIGNOPE")).unwrap_err().is_rejection());
        assert_eq!(signal_exit_code(Signal::SIGKILL), 137);
    }
}
