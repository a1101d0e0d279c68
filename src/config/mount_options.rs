//! `nfs.mount_options`: which `mount_nfs -o` options FreeBSD knows, and
//! which of them the follow runbook cannot use. Pure: the text of the
//! option string in, the problems (each at its byte offset) out.
//!
//! mount_nfs(8) splits `-o` at commas and each option at its first `=`
//! (sbin/mount_nfs/mount_nfs.c, the `case 'o'` loop). It handles some
//! options itself and hands every other one to nmount(2) *unchecked*; the
//! kernel then refuses any name that is neither in its `global_opts`
//! (sys/kern/vfs_mount.c) nor in the NFS client's `nfs_opts`
//! (sys/fs/nfsclient/nfs_clvfsops.c), a `no` prefix allowed
//! (`vfs_filteropt`), and the mount fails with "mount option <X> is
//! unknown". Checking here turns that failure on every follower, at
//! failover time, into a check-config error with the option's position.

/// How an option is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `name`, no value.
    Flag,
    /// `name=N`: a decimal integer ≥ 0 (mount_nfs.c `strtol`, the kernel's
    /// `sscanf("%d")`).
    Number,
    /// `name=word`: one of these words, or any non-empty text when empty.
    Word(&'static [&'static str]),
}

use Form::{Flag, Number, Word};

/// Every option FreeBSD's mount_nfs accepts through `-o`, in one place.
/// Sources, FreeBSD 14:
/// - sbin/mount_nfs/mount_nfs.c, `case 'o'`: the options mount_nfs acts on
///   itself (`bg`, `nfsv4`, `retrycnt`, `vers`, `sec`, `proto`, `port`...),
///   with the values it accepts (`sec` and `proto` words, `vers` 2-4);
/// - sys/fs/nfsclient/nfs_clvfsops.c, `nfs_opts[]`: what the kernel takes
///   (`minorversion` 0-2, only with NFSv4: "illegal minorversion");
///   `nconnect` (13.1) and `syskrb5` (14.0, release notes) are newer than
///   mount_nfs.8's list;
/// - mount_nfs.8, the option list (which also documents `deadthresh`,
///   `dumbtimer` and `maxgroups`: see [`REFUSED`]);
/// - mount(8) / sbin/mount/mntopts.h `MOPT_STDOPTS`, narrowed to the
///   generic options the kernel lets through for NFS: `global_opts` in
///   sys/kern/vfs_mount.c (`ro`, `rw`, `nosuid`, `noexec`) and the generic
///   names in `nfs_opts` (`noatime`, `nosymfollow`, `async`, `noclusterr`,
///   `noclusterw`, `suiddir`, `union`, `multilabel`, `acls`).
const KNOWN: &[(&str, Form)] = &[
    // mount_nfs.c acts on these itself.
    ("bg", Flag),
    ("bgnow", Flag),
    ("fg", Flag),
    ("gssname", Word(&[])),
    ("intr", Flag),
    ("mntudp", Flag),
    ("nfsv2", Flag),
    ("nfsv3", Flag),
    ("nfsv4", Flag),
    ("noconn", Flag),
    ("noinet4", Flag),
    ("noinet6", Flag),
    ("port", Number),
    ("principal", Word(&[])),
    ("proto", Word(&["tcp", "udp", "tcp6", "udp6"])),
    ("retrycnt", Number),
    ("sec", Word(&["krb5", "krb5i", "krb5p", "sys"])),
    ("soft", Flag),
    ("tcp", Flag),
    ("udp", Flag),
    ("vers", Word(&["2", "3", "4"])),
    // nfs_clvfsops.c nfs_opts (the kernel).
    ("acdirmax", Number),
    ("acdirmin", Number),
    ("acregmax", Number),
    ("acregmin", Number),
    ("actimeo", Number),
    ("allgssname", Flag),
    ("conn", Flag),
    ("hard", Flag),
    ("lockd", Flag),
    ("minorversion", Word(&["0", "1", "2"])),
    ("nametimeo", Number),
    ("nconnect", Number),
    ("negnametimeo", Number),
    ("noac", Flag),
    ("nocto", Flag),
    ("nolockd", Flag),
    ("noncontigwr", Flag),
    ("noresvport", Flag),
    ("oneopenown", Flag),
    ("pnfs", Flag),
    ("rdirplus", Flag),
    ("readahead", Number),
    ("readdirsize", Number),
    ("resvport", Flag),
    ("retrans", Number),
    ("rsize", Number),
    ("syskrb5", Flag),
    ("timeo", Number),
    ("timeout", Number),
    ("tls", Flag),
    ("tlscertname", Word(&[])),
    ("wcommitsize", Number),
    ("wsize", Number),
    // mount(8)'s generic options the kernel lets through for NFS.
    ("acls", Flag),
    ("async", Flag),
    ("multilabel", Flag),
    ("noatime", Flag),
    ("noclusterr", Flag),
    ("noclusterw", Flag),
    ("noexec", Flag),
    ("nosuid", Flag),
    ("nosymfollow", Flag),
    ("ro", Flag),
    ("rw", Flag),
    ("suiddir", Flag),
    ("union", Flag),
];

/// Options FreeBSD knows that the follow runbook cannot use, and why.
const REFUSED: &[(&str, &str)] = &[
    ("bg", "a background mount returns before the mount exists, so the runbook's verify (`mount -p`) would race it; the agent retries the mount itself (runbook.mount_attempts)"),
    ("bgnow", "a background mount returns before the mount exists, so the runbook's verify (`mount -p`) would race it; the agent retries the mount itself (runbook.mount_attempts)"),
    ("soft", "is unsafe with NFSv4 (mount_nfs(8) BUGS; mount_nfs.c warns \"options soft and/or intr cannot be safely used for NFSv4\"); use \"hard\""),
    ("intr", "is unsafe with NFSv4 (mount_nfs(8) BUGS; mount_nfs.c warns \"options soft and/or intr cannot be safely used for NFSv4\"); use \"hard\""),
    ("nfsv2", "followers mount NFSv4: use \"nfsv4\""),
    ("nfsv3", "followers mount NFSv4: use \"nfsv4\""),
    ("udp", "NFSv4 runs over TCP (mount_nfs(8) nfsv4)"),
    ("mntudp", "NFSv4 runs over TCP and has no mount protocol (mount_nfs(8) nfsv4)"),
    // noinet4 and noinet6 are checked against the family of the address
    // followers mount from, in load/nfs.rs.
    ("deadthresh", "is documented in mount_nfs(8) but mount_nfs.c hands it to nmount(2) and nfs_clvfsops.c nfs_opts does not list it: the mount fails (\"mount option <deadthresh> is unknown\")"),
    ("dumbtimer", "is documented in mount_nfs(8) but mount_nfs.c hands it to nmount(2) and nfs_clvfsops.c nfs_opts does not list it: the mount fails (\"mount option <dumbtimer> is unknown\")"),
    ("maxgroups", "is documented in mount_nfs(8) but mount_nfs.c hands it to nmount(2) and nfs_clvfsops.c nfs_opts does not list it: the mount fails (\"mount option <maxgroups> is unknown\")"),
    ("update", "changes an existing mount (mount -u); the follow mounts afresh"),
    ("force", "is for mount -f/umount -f of an existing mount; the follow mounts afresh"),
    ("from", "is set by mount_nfs itself from VIP:path"),
    ("nfs_args", "is set by mount_nfs itself"),
    ("hostname", "is set by mount_nfs itself from the VIP"),
    ("addr", "is set by mount_nfs itself from the VIP"),
    ("fh", "is set by mount_nfs itself"),
    ("dirpath", "is set by mount_nfs itself from the path"),
    ("fstype", "is set by mount_nfs itself"),
    ("fspath", "is set by mount_nfs itself from the mount point"),
    ("errmsg", "is set by mount_nfs itself"),
];

/// Spellings of other systems (mostly Linux's nfs(5)) that FreeBSD does
/// not know, with what to write instead.
const FOREIGN: &[(&str, &str)] = &[
    ("nfsv4.0", "write \"nfsv4\""),
    ("nfsv4.1", "write \"nfsv4,minorversion=1\""),
    ("nfsv4.2", "write \"nfsv4,minorversion=2\""),
    (
        "nfsvers",
        "write \"nfsv4\" (FreeBSD's own spelling; with a minor version \"nfsv4,minorversion=1\")",
    ),
    (
        "retry",
        "Linux's retry is in minutes; FreeBSD counts tries: write \"retrycnt=1\"",
    ),
    (
        "nolock",
        "FreeBSD says \"nolockd\", and only NFSv3 uses it (NFSv4 locks go over the wire): drop it",
    ),
    (
        "lock",
        "FreeBSD says \"lockd\", and only NFSv3 uses it: drop it",
    ),
    ("ac", "attribute caching is FreeBSD's default: drop it"),
    (
        "cto",
        "close-to-open consistency is FreeBSD's default: drop it",
    ),
    (
        "nordirplus",
        "FreeBSD does not use ReaddirPlus unless \"rdirplus\" is given: drop it",
    ),
    (
        "_netdev",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "nofail",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "auto",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "noauto",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "late",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "failok",
        "is an fstab option, not a mount_nfs one, and the agent's mounts are not in fstab: drop it",
    ),
    (
        "mountport",
        "belongs to the NFSv3 mount protocol, which NFSv4 does not use: drop it",
    ),
    (
        "mountproto",
        "belongs to the NFSv3 mount protocol, which NFSv4 does not use: drop it",
    ),
    (
        "mountvers",
        "belongs to the NFSv3 mount protocol, which NFSv4 does not use: drop it",
    ),
    (
        "mounthost",
        "belongs to the NFSv3 mount protocol, which NFSv4 does not use: drop it",
    ),
];

/// One option of the string: `name` or `name=value`, at byte `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOption<'a> {
    /// The option's name, the text before the first `=`.
    pub name: &'a str,
    /// The text after the first `=`; `None` for a flag such as `hard`.
    pub value: Option<&'a str>,
    /// Byte offset of the option in the whole string (for the diagnostic's column).
    pub offset: usize,
}

/// Splits like mount_nfs.c: at commas, then at the first `=`.
pub fn split(text: &str) -> Vec<MountOption<'_>> {
    let mut options = Vec::new();
    let mut offset = 0;
    for part in text.split(',') {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (part, None),
        };
        options.push(MountOption {
            name,
            value,
            offset,
        });
        offset += part.len() + 1;
    }
    options
}

/// A problem with one option (`offset` is where it starts in the string)
/// or with the whole string (`offset` 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset into the option string where the problem starts.
    pub offset: usize,
    /// What is wrong and what to write instead (the diagnostic's text).
    pub message: String,
}

/// `retrycnt=N` of the string: mount_nfs's count of tries (the last one
/// given wins, as in mount_nfs.c's loop); `None` when absent or not a
/// number.
pub fn retrycnt(text: &str) -> Option<u32> {
    split(text)
        .iter()
        .rev()
        .find(|o| o.name == "retrycnt")
        .and_then(|o| o.value)
        .and_then(|v| v.parse().ok())
}

/// What mount_nfs sleeps between its own tries (mount_nfs.c
/// `rtm_ifinfo_sleep(60)`; mount_nfs(8): "There is a 60 second delay
/// between each attempt").
pub const SLEEP_BETWEEN_TRIES: std::time::Duration = std::time::Duration::from_secs(60);

/// Every problem of an `nfs.mount_options` string, in the order of the
/// options; empty when the follow runbook can use it.
pub fn check(text: &str) -> Vec<Problem> {
    let options = split(text);
    let mut problems = Vec::new();
    if text.chars().any(char::is_whitespace) || options.iter().any(|o| o.name.is_empty()) {
        problems.push(Problem {
            offset: 0,
            message: format!(
                "{text:?} must be comma-separated options without spaces or empty entries"
            ),
        });
        return problems;
    }
    for option in &options {
        if let Some(message) = check_one(option) {
            problems.push(Problem {
                offset: option.offset,
                message,
            });
        }
    }
    let v4 = options
        .iter()
        .any(|o| o.name == "nfsv4" || (o.name == "vers" && o.value == Some("4")));
    let foreign_v4 = options.iter().any(|o| {
        FOREIGN
            .iter()
            .any(|(n, _)| *n == o.name && o.name.starts_with("nfsv"))
            || (o.name == "vers" && o.value.is_some_and(|v| v.starts_with('4')))
    });
    if !v4 && !foreign_v4 {
        problems.push(Problem {
            offset: 0,
            message: format!(
                "{text:?} must select NFSv4 (\"nfsv4\"; mount_nfs(8)): followers always mount NFSv4"
            ),
        });
    }
    if !options.iter().any(|o| o.name == "retrycnt") {
        problems.push(Problem {
            offset: 0,
            message: format!(
                "{text:?} has no retrycnt: mount_nfs then retries forever (mount_nfs.c: an unset retrycnt becomes 0, \"keep retrying forever\"), 60 s apart, until the agent's runbook.mount_timeout kills it; add \"retrycnt=1\" and let the agent retry (runbook.mount_attempts)"
            ),
        });
    }
    problems
}

fn check_one(option: &MountOption<'_>) -> Option<String> {
    let MountOption { name, value, .. } = *option;
    let shown = match value {
        Some(v) => format!("{name}={v}"),
        None => name.to_owned(),
    };
    if let Some((_, fix)) = FOREIGN.iter().find(|(n, _)| *n == name) {
        let fix = match (name, value) {
            ("nfsvers", Some(v)) => version_fix(v).unwrap_or(fix),
            _ => fix,
        };
        return Some(format!(
            "{shown:?} is not a FreeBSD option (mount_nfs.c hands unknown options to nmount(2), which fails: \"mount option <{name}> is unknown\"); {fix}"
        ));
    }
    let Some((_, form)) = KNOWN.iter().find(|(n, _)| *n == name) else {
        if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
            return Some(format!("{shown:?} {why}"));
        }
        if name.starts_with("x-") {
            return Some(format!(
                "{shown:?} is an fstab option of other systems, not a mount_nfs one: drop it"
            ));
        }
        return Some(format!(
            "{shown:?} is not an option FreeBSD's mount_nfs knows (mount_nfs(8), nfs_clvfsops.c nfs_opts): mount_nfs.c hands it to nmount(2), which fails with \"mount option <{name}> is unknown\""
        ));
    };
    let value_problem = match (form, value) {
        (Flag, Some(_)) => Some(format!("{shown:?}: {name} takes no value; write \"{name}\"")),
        (Number, None) => Some(format!("{shown:?} needs a value ({name}=N; mount_nfs(8))")),
        (Word(words), None) => Some(format!(
            "{shown:?} needs a value ({name}={}; mount_nfs(8))",
            if words.is_empty() { "...".to_owned() } else { words.join("|") }
        )),
        // retrycnt has its own words below.
        (Number, Some(v)) if name != "retrycnt" && !is_number(v) => Some(format!(
            "{shown:?}: {name} takes a number (mount_nfs(8)), not {v:?}"
        )),
        (Word(_), Some(v)) if name == "vers" && v != "2" && v != "3" && v != "4" => Some(format!(
            "{shown:?}: FreeBSD's vers takes 2, 3 or 4 (mount_nfs.c: \"illegal vers value\"; \"4.1\" is a Linux spelling); {}",
            version_fix(v).unwrap_or("write \"nfsv4\"")
        )),
        (Word(words), Some(v)) if v.is_empty() || (!words.is_empty() && !words.contains(&v)) => {
            Some(format!(
                "{shown:?}: {name} takes {} (mount_nfs(8)), not {v:?}",
                if words.is_empty() { "a non-empty value".to_owned() } else { words.join(", ") }
            ))
        }
        _ => None,
    };
    if value_problem.is_some() {
        return value_problem;
    }
    if name == "retrycnt" {
        return match value.and_then(|v| v.parse::<u32>().ok()) {
            None => Some(format!(
                "{shown:?}: retrycnt takes a count of tries (mount_nfs.c: \"illegal retrycnt value\"); write \"retrycnt=1\""
            )),
            Some(0) => Some(format!(
                "{shown:?} retries forever (mount_nfs.c: \"If retrycnt == 0, we are to keep retrying forever\"), 60 s apart, until the agent's runbook.mount_timeout kills it; write \"retrycnt=1\" and let the agent retry (runbook.mount_attempts)"
            )),
            Some(_) => None,
        };
    }
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
        return Some(format!("{shown:?} {why}"));
    }
    match (name, value) {
        ("vers", Some(v)) if v != "4" => Some(format!("{shown:?}: followers mount NFSv4: use \"nfsv4\"")),
        ("proto", Some("udp")) | ("proto", Some("udp6")) => {
            Some(format!("{shown:?}: NFSv4 runs over TCP (mount_nfs(8) nfsv4)"))
        }
        ("proto", Some("tcp6")) => Some(format!(
            "{shown:?} disables IPv4 (mount_nfs.c: OF_NOINET4), and the virtual IP the followers mount from is IPv4"
        )),
        _ => None,
    }
}

/// The FreeBSD spelling of an NFS version written the Linux way
/// (`4`, `4.0`, `4.1`, `4.2`).
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn version_fix(version: &str) -> Option<&'static str> {
    match version {
        "4" | "4.0" => Some("write \"nfsv4\""),
        "4.1" => Some("write \"nfsv4,minorversion=1\""),
        "4.2" => Some("write \"nfsv4,minorversion=2\""),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<(usize, String)> {
        check(text)
            .into_iter()
            .map(|p| (p.offset, p.message))
            .collect()
    }

    #[test]
    fn the_default_and_the_freebsd_spellings_pass() {
        for text in [
            crate::config::DEFAULT_MOUNT_OPTIONS,
            "vers=4,minorversion=2,hard,retrycnt=1",
            "nfsv4,hard,retrycnt=1,noatime,rsize=131072,wsize=131072,sec=sys,nconnect=4,tcp",
            "nfsv4,minorversion=1,retrycnt=3,noresvport,ro,nosuid,noexec",
        ] {
            assert_eq!(messages(text), [], "{text}");
        }
    }

    #[test]
    fn split_keeps_offsets_and_values() {
        assert_eq!(
            split("nfsv4,retrycnt=1,a=b=c"),
            [
                MountOption {
                    name: "nfsv4",
                    value: None,
                    offset: 0
                },
                MountOption {
                    name: "retrycnt",
                    value: Some("1"),
                    offset: 6
                },
                MountOption {
                    name: "a",
                    value: Some("b=c"),
                    offset: 17
                },
            ]
        );
    }

    #[test]
    fn each_problem_sits_at_its_option() {
        let found = messages("nfsv4,hard,retrycnt=1,bg,rsize");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, 22);
        assert!(found[0].1.contains("background mount"), "{found:?}");
        assert_eq!(found[1].0, 25);
        assert!(found[1].1.contains("needs a value (rsize=N"), "{found:?}");
    }

    #[test]
    fn linux_spellings_get_the_freebsd_one() {
        for (text, fix) in [
            ("nfsv4.1,hard,retrycnt=1", "nfsv4,minorversion=1"),
            ("vers=4.1,hard,retrycnt=1", "nfsv4,minorversion=1"),
            ("nfsvers=4,hard,retrycnt=1", "write \\\"nfsv4\\\""),
            ("nfsvers=4.2,hard,retrycnt=1", "nfsv4,minorversion=2"),
        ] {
            let found = messages(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].0, 0);
            assert!(
                format!("{:?}", found[0].1).contains(fix),
                "{text}: {found:?}"
            );
        }
    }

    #[test]
    fn retrycnt_must_be_given_and_not_zero() {
        let zero = messages("nfsv4,hard,retrycnt=0");
        assert!(zero[0].1.contains("retries forever"), "{zero:?}");
        let none = messages("nfsv4,hard");
        assert!(none[0].1.contains("has no retrycnt"), "{none:?}");
        assert_eq!(retrycnt("nfsv4,retrycnt=3,retrycnt=2"), Some(2));
        assert_eq!(retrycnt("nfsv4"), None);
    }

    #[test]
    fn flags_take_no_value_and_words_are_checked() {
        assert!(messages("nfsv4,retrycnt=1,hard=1")[0]
            .1
            .contains("takes no value"));
        assert!(messages("nfsv4,retrycnt=1,sec=krb6")[0]
            .1
            .contains("krb5, krb5i, krb5p, sys"));
        assert!(messages("nfsv4,retrycnt=1,minorversion=3")[0]
            .1
            .contains("0, 1, 2"));
        assert!(messages("nfsv4,retrycnt=1,rsize=big")[0]
            .1
            .contains("takes a number"));
        assert!(messages("nfsv4,retrycnt=1,proto=udp")[0].1.contains("TCP"));
        assert!(messages("nfsv4,retrycnt=1,maxgroups=8")[0]
            .1
            .contains("unknown"));
        assert!(messages("nfsv4,retrycnt=1,frobnicate")[0]
            .1
            .contains("not an option FreeBSD"));
        assert!(messages("nfsv4,,retrycnt=1")[0].1.contains("empty entries"));
    }
}
