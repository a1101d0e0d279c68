//! Configuration text: the TOML parser, the schema and every validation
//! rule, then what the CLI does with an accepted config (its summary and the
//! `plan` of each runbook). Errors must render; nothing may panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rcbsd_failover::config::{parse_with_hostname, ConfigError};
use rcbsd_failover::net::vip::Os;
use rcbsd_failover::runbook::{plan, Kind};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    // The pure form of `config::parse`: no gethostname(2) per execution,
    // and the default node name is the one the cluster examples use.
    match parse_with_hostname(text, Path::new("fuzz.toml"), Some("node1")) {
        Ok(config) => {
            let _ = config.summary();
            let available = ["web1".to_string(), "db1".to_string()];
            for kind in [Kind::Promote, Kind::Demote, Kind::Follow] {
                let _ = plan::render(&config, kind, Os::Linux, &available);
                let _ = plan::render(&config, kind, Os::FreeBsd, &[]);
            }
        }
        Err(error) => {
            // Every refusal names at least one problem, at a real position.
            assert!(
                matches!(error, ConfigError::Invalid(_)),
                "parse never reads a file: {error}"
            );
            assert!(!error.diagnostics().is_empty());
            for diagnostic in error.diagnostics() {
                assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
                assert!(
                    diagnostic.line <= text.matches('\n').count() + 1,
                    "{diagnostic}"
                );
            }
            let _ = error.to_string();
        }
    }
});
