//! Start-up checks of the host, before any socket is opened.
//!
//! FreeBSD: a loaded carp(4) registers IP protocol 112 in the kernel and
//! takes every VRRP/CARP packet, so a raw socket for 112 would hear nothing
//! and every node would make itself master. We refuse to start instead.
//! Linux: nothing to check here; a missing CAP_NET_RAW is reported, with
//! what to do, by the raw socket's open.

use std::path::Path;
use std::process::{Command, Stdio};

use super::error::NetError;

/// Runs the start-up checks of the host: on FreeBSD, refuses to start when
/// carp(4) is loaded (asking `kldstat`, the configured `tools.kldstat`);
/// elsewhere, nothing.
pub fn check(kldstat: &Path) -> Result<(), NetError> {
    #[cfg(target_os = "freebsd")]
    refuse_if_carp_loaded(kldstat)?;
    #[cfg(not(target_os = "freebsd"))]
    let _ = kldstat;
    Ok(())
}

/// `kldstat -q -m carp` exits 0 when the carp module is present (loaded
/// or compiled into the kernel) and non-zero otherwise, printing nothing.
#[cfg_attr(not(target_os = "freebsd"), allow(dead_code))]
fn carp_query_argv(kldstat: &Path) -> Vec<String> {
    vec![
        kldstat.to_string_lossy().into_owned(),
        "-q".into(),
        "-m".into(),
        "carp".into(),
    ]
}

#[cfg_attr(not(target_os = "freebsd"), allow(dead_code))]
fn refuse_if_carp_loaded(kldstat: &Path) -> Result<(), NetError> {
    let argv = carp_query_argv(kldstat);
    let status = Command::new(kldstat)
        .args(argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| NetError::PreflightCommand { argv, error })?;
    if status.success() {
        return Err(NetError::CarpLoaded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carp_query_is_kldstat_quiet_by_module_name() {
        assert_eq!(
            carp_query_argv(Path::new("/sbin/kldstat")),
            ["/sbin/kldstat", "-q", "-m", "carp"]
        );
    }

    // Stand-ins for kldstat: `true` says "loaded", `false` says "absent".
    #[test]
    fn a_loaded_carp_is_refused_with_the_way_out() {
        let error = refuse_if_carp_loaded(Path::new("/bin/true")).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, NetError::CarpLoaded), "{text}");
        assert!(text.contains("kldunload carp"), "{text}");
    }

    #[test]
    fn no_carp_is_fine() {
        assert!(refuse_if_carp_loaded(Path::new("/bin/false")).is_ok());
    }

    #[test]
    fn a_missing_kldstat_is_an_error_naming_the_command() {
        let error = refuse_if_carp_loaded(Path::new("/nonexistent/kldstat")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/kldstat"),
            "{error}"
        );
    }

    #[test]
    fn check_passes_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(check(Path::new("/sbin/kldstat")).is_ok());
        }
    }
}
