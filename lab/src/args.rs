//! `rcbsd-lab` options.

use std::time::Duration;

/// Options of `rcbsd-lab`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct LabArgs {
    /// Number of VRRP nodes (2 to 7); node i gets priority 150, 100, 50,
    /// 40, 30, 20, 10.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=7))]
    pub nodes: u8,
    /// Advertisement interval of every node: 10ms to 40.95s in 10 ms steps
    /// ("1s", "100ms", "20ms").
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub advert_interval: Duration,
    /// Link cuts of the master to measure.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: u32,
    /// Print the report as one JSON document on stdout (progress stays on
    /// stderr).
    #[arg(long)]
    pub json: bool,
    /// Also run the same trials with this implementation, in the same run,
    /// and print the ratios ours/theirs.
    #[arg(long, value_enum)]
    pub compare: Option<Baseline>,
    /// The implementation measured first (keepalived alone measures the
    /// baseline without our agent).
    #[arg(long, value_enum, default_value_t = Subject::RcbsdFailover)]
    pub implementation: Subject,
    /// Client ping rate in requests per second (the outage resolution is
    /// its inverse).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=10000))]
    pub rate: u32,
    /// The agent binary started on the nodes (default: this program).
    #[arg(long, value_name = "PATH")]
    pub agent_exe: Option<std::path::PathBuf>,
    /// What to measure: `vrrp` (the VIP as a pinging client sees it) or
    /// `cbsd` (the full runbooks against FreeBSD tool stand-ins: VIP,
    /// exports and nfsd, follower remounts, environments running again)
    /// or `flood` (a benchmark: junk VRRP and heartbeat packets at the
    /// highest rate a flooder can send, while the master must keep its role)
    /// or `faults` (the fault table: partitions, crashes, failing and hung
    /// steps, a frozen agent, watchdog resets; PASS/FAIL per fault)
    /// or `idle` (a benchmark: CPU time and wake-ups of idle agents after
    /// the election settled, for `--duration`; with `--compare keepalived`
    /// side by side).
    #[arg(long, value_enum, default_value_t = Scenario::Vrrp)]
    pub scenario: Scenario,
    /// `--scenario flood`: how long the flood lasts ("30s", "2.5s");
    /// `--scenario idle`: how long each implementation is measured.
    #[arg(long, default_value = "30s", value_parser = parse_flood_duration)]
    pub duration: Duration,
    /// `--scenario faults`: run only the fault with this name (see the
    /// list in docs/faults.md, e.g. `master-isolated`).
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,
    /// `--scenario cbsd`: what followers do on a master change, written as
    /// `[follow] on_master_change` (remount, the default, is left out of
    /// the configuration).
    #[arg(long, value_enum, default_value_t = crate::cbsd::FollowMode::Remount)]
    pub follow: crate::cbsd::FollowMode,
    /// `--scenario cbsd`: measure both follow modes, remount then
    /// ride-through, one cluster after the other, and print them side by
    /// side (overrides `--follow`).
    #[arg(long)]
    pub compare_follow: bool,
    /// `--scenario flood`: sender threads of the flooder, each with its own
    /// raw and UDP sockets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub flood_threads: u8,
    /// `--scenario vrrp`: the address family of the lab network, the VIP
    /// and the client's pings: `ipv4` (198.18.0.0/15) or `ipv6`
    /// (2001:db8::/32 and link-local, an IPv6 `[vrrp]`, RFC 5798 §5.2.9).
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    pub family: Family,
}

/// The address family a lab run measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

/// What the lab measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Vrrp,
    Cbsd,
    Flood,
    Faults,
    Idle,
}

/// An implementation to compare against.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    Keepalived,
}

/// An implementation the lab can run on the nodes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    RcbsdFailover,
    Keepalived,
}

/// The measurement settings shared by every implementation of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    pub nodes: usize,
    #[serde(serialize_with = "as_millis")]
    pub advert_interval: Duration,
    pub trials: u32,
    pub rate_hz: u32,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl LabArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            nodes: usize::from(self.nodes),
            advert_interval: self.advert_interval,
            trials: self.trials,
            rate_hz: self.rate,
        }
    }

    /// Refuses the options that do not measure IPv6 yet: only the default
    /// `vrrp` scenario has an IPv6 topology, VIP and prober.
    pub fn check_family(&self) -> Result<(), String> {
        match (self.family, self.scenario) {
            (Family::Ipv4, _) | (Family::Ipv6, Scenario::Vrrp) => Ok(()),
            (Family::Ipv6, other) => Err(format!(
                "--family ipv6 measures --scenario vrrp only; --scenario {} is IPv4 only for now",
                other.as_str()
            )),
        }
    }

    /// The implementations to measure, in order.
    pub fn subjects(&self) -> Result<Vec<Subject>, String> {
        match (self.implementation, self.compare) {
            (Subject::Keepalived, Some(Baseline::Keepalived)) => {
                Err("--compare keepalived with --implementation keepalived compares keepalived with itself".into())
            }
            (first, Some(Baseline::Keepalived)) => Ok(vec![first, Subject::Keepalived]),
            (first, None) => Ok(vec![first]),
        }
    }
}

impl Scenario {
    /// The name `--scenario` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Vrrp => "vrrp",
            Scenario::Cbsd => "cbsd",
            Scenario::Flood => "flood",
            Scenario::Faults => "faults",
            Scenario::Idle => "idle",
        }
    }
}

impl Subject {
    pub fn label(self) -> &'static str {
        match self {
            Subject::RcbsdFailover => "rcbsd-failover",
            Subject::Keepalived => "keepalived",
        }
    }
}

/// The flood's duration: a config-style duration (`"30s"`, `"500ms"`),
/// 1 s to 1 h, long enough to cover several advertisements and short
/// enough that a typo does not flood a shared machine for a day.
pub fn parse_flood_duration(text: &str) -> Result<Duration, String> {
    let duration = rcbsd_failover::config::parse_duration(text)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&duration) {
        return Err(format!("{text:?}: the flood lasts 1s to 3600s"));
    }
    Ok(duration)
}

/// An advertisement interval: `"1s"`, `"1.5s"`, `"100ms"`, `"20ms"`; VRRPv3
/// carries it in centiseconds, 1..=4095 (RFC 5798 §5.2.7).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, millis_per_unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        return Err(format!("{text:?} needs a unit: e.g. \"1s\" or \"100ms\""));
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) || fraction.len() > 3 {
        return Err(format!(
            "{text:?} is not a duration like \"1s\" or \"100ms\""
        ));
    }
    let padded = format!("{fraction:0<3}");
    let millis = whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(1000))
        .zip(padded.parse::<u64>().ok())
        .and_then(|(w, f)| w.checked_add(f))
        .map(|thousandths| thousandths * millis_per_unit / 1000)
        .filter(|_| millis_per_unit == 1000 || fraction.is_empty())
        .ok_or_else(|| format!("{text:?} is not a duration like \"1s\" or \"100ms\""))?;
    if millis % 10 != 0 || !(10..=40_950).contains(&millis) {
        return Err(format!(
            "{text:?}: the advertisement interval is 10ms to 40.95s in steps of 10ms"
        ));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_intervals() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_what_vrrp_cannot_carry() {
        for bad in [
            "", "1", "5ms", "15ms", "41s", "1.0001s", "1.5ms", "s", "-1s", "1e3ms",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn compare_adds_keepalived_after_ours() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            lab: LabArgs,
        }
        let cli = Cli::try_parse_from(["lab", "--compare", "keepalived", "--nodes", "2"])
            .expect("valid arguments");
        assert_eq!(
            cli.lab.subjects(),
            Ok(vec![Subject::RcbsdFailover, Subject::Keepalived])
        );
        assert!(Cli::try_parse_from(["lab", "--nodes", "8"]).is_err());
        assert_eq!(cli.lab.scenario, Scenario::Vrrp);
        let cbsd = Cli::try_parse_from(["lab", "--scenario", "cbsd"]).expect("valid arguments");
        assert_eq!(cbsd.lab.scenario, Scenario::Cbsd);
        assert_eq!(cbsd.lab.follow, crate::cbsd::FollowMode::Remount);
        assert!(!cbsd.lab.compare_follow);
        let ride = Cli::try_parse_from(["lab", "--scenario", "cbsd", "--follow", "ride-through"])
            .expect("valid arguments");
        assert_eq!(ride.lab.follow, crate::cbsd::FollowMode::RideThrough);
        let both = Cli::try_parse_from(["lab", "--scenario", "cbsd", "--compare-follow"])
            .expect("valid arguments");
        assert!(both.lab.compare_follow);
        assert!(Cli::try_parse_from(["lab", "--follow", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["lab", "--advert-interval", "7ms"]).is_err());
    }

    #[test]
    fn family_ipv6_is_for_the_vrrp_scenario_only() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            lab: LabArgs,
        }
        let default = Cli::try_parse_from(["lab"]).expect("valid arguments");
        assert_eq!(default.lab.family, Family::Ipv4);
        let v6 = Cli::try_parse_from(["lab", "--family", "ipv6", "--compare", "keepalived"])
            .expect("valid arguments");
        assert_eq!(v6.lab.family, Family::Ipv6);
        assert_eq!(v6.lab.check_family(), Ok(()));
        for scenario in ["cbsd", "flood", "faults", "idle"] {
            let cli = Cli::try_parse_from(["lab", "--family", "ipv6", "--scenario", scenario])
                .expect("valid arguments");
            let refused = cli.lab.check_family().expect_err("ipv6 refused");
            assert!(refused.contains(scenario), "{refused}");
            let v4 = Cli::try_parse_from(["lab", "--scenario", scenario]).expect("valid");
            assert_eq!(v4.lab.check_family(), Ok(()));
        }
        assert!(Cli::try_parse_from(["lab", "--family", "ipx"]).is_err());
    }

    #[test]
    fn flood_takes_a_duration_and_threads() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            lab: LabArgs,
        }
        let flood = Cli::try_parse_from(["lab", "--scenario", "flood"]).expect("valid arguments");
        assert_eq!(flood.lab.scenario, Scenario::Flood);
        assert_eq!(flood.lab.duration, Duration::from_secs(30));
        assert_eq!(flood.lab.flood_threads, 2);
        let short = Cli::try_parse_from(["lab", "--duration", "1.5s", "--flood-threads", "4"])
            .expect("valid arguments");
        assert_eq!(short.lab.duration, Duration::from_millis(1500));
        assert_eq!(short.lab.flood_threads, 4);
        for bad in ["0s", "500ms", "2h", "30"] {
            assert!(
                Cli::try_parse_from(["lab", "--duration", bad]).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(Cli::try_parse_from(["lab", "--flood-threads", "0"]).is_err());
    }
}
