//! Every exit status this program (and the lab) ends with, in one place:
//! the sysexits(3) codes FreeBSD's own daemons and tools use, plus 1 for a
//! refusal or a failed check and 130 for an interrupted lab run. The man
//! page's EXIT STATUS section lists the same values.

/// How a command ends. `u8::from(status)` is the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Success,
    /// 1: understood and refused (a control request), not done in time
    /// (`move --wait`), or a check that FAILs (`doctor`).
    Failure,
    /// 64, EX_USAGE: a malformed command line.
    Usage,
    /// 66, EX_NOINPUT: an input file cannot be read.
    NoInput,
    /// 69, EX_UNAVAILABLE: something needed is missing or unusable (no
    /// agent answers, an interface, a service).
    Unavailable,
    /// 71, EX_OSERR: a system error (a socket, a thread, a signal handler).
    OsErr,
    /// 74, EX_IOERR: an I/O error on the control socket.
    IoErr,
    /// 75, EX_TEMPFAIL: the agent did not answer in time.
    TempFail,
    /// 76, EX_PROTOCOL: a reply that makes no sense.
    Protocol,
    /// 77, EX_NOPERM: not permitted (not root, the socket's mode).
    NoPerm,
    /// 78, EX_CONFIG: the configuration is wrong.
    Config,
    /// 130 (128 + SIGINT): the lab was interrupted and tore everything down.
    Interrupted,
}

impl ExitStatus {
    /// The process exit code (0, 1, a sysexits(3) value, or 130).
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 64,
            ExitStatus::NoInput => 66,
            ExitStatus::Unavailable => 69,
            ExitStatus::OsErr => 71,
            ExitStatus::IoErr => 74,
            ExitStatus::TempFail => 75,
            ExitStatus::Protocol => 76,
            ExitStatus::NoPerm => 77,
            ExitStatus::Config => 78,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for u8 {
    fn from(status: ExitStatus) -> u8 {
        status.code()
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> std::process::ExitCode {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_sysexits_values() {
        // /usr/include/sysexits.h
        assert_eq!(ExitStatus::Usage.code(), 64);
        assert_eq!(ExitStatus::NoInput.code(), 66);
        assert_eq!(ExitStatus::Unavailable.code(), 69);
        assert_eq!(ExitStatus::OsErr.code(), 71);
        assert_eq!(ExitStatus::IoErr.code(), 74);
        assert_eq!(ExitStatus::TempFail.code(), 75);
        assert_eq!(ExitStatus::Protocol.code(), 76);
        assert_eq!(ExitStatus::NoPerm.code(), 77);
        assert_eq!(ExitStatus::Config.code(), 78);
    }
}
