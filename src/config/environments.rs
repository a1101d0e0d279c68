//! `[environments]`: the jails and VMs this node runs, as names or globs,
//! and the timeouts of starting and stopping them (read and checked in
//! `load/environments.rs`). [`EnvKind`] is shared with `[[environment]]`
//! (`environment.rs`).

use std::time::Duration;

/// Whether an environment is a jail or a bhyve VM: CBSD starts and stops
/// them with different commands. Ordered (jail before bhyve) so that lists
/// of environments can be sorted into a stable order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvKind {
    /// A jail: `cbsd jstart` / `jstop`.
    Jail,
    /// A bhyve VM: `cbsd bstart` / `bstop`.
    Bhyve,
}

impl EnvKind {
    /// The spelling in the configuration and in messages: `"jail"` or `"bhyve"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Jail => "jail",
            EnvKind::Bhyve => "bhyve",
        }
    }
}

/// One entry of `[environments] jails` / `bhyve`: a name or a glob
/// (`*`, `?`), matched against the directories of `jails-system/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvPattern {
    /// The name or glob as written, e.g. `"web1"` or `"db*"`.
    pub pattern: String,
    /// Which list it came from: `jails` or `bhyve`.
    pub kind: EnvKind,
}

impl EnvPattern {
    /// Whether the pattern has `*` or `?` (a glob that may match several
    /// environments, or none) rather than being a literal name.
    pub fn is_glob(&self) -> bool {
        self.pattern.contains(['*', '?'])
    }

    /// Shell-style match of `*` and `?` (no character classes).
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.pattern.as_bytes(), name.as_bytes())
    }
}

fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with one backtrack point: linear in practice and
    // never recursive, whatever the pattern.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or(&[]).iter().all(|&c| c == b'*')
}

/// `[environments]`: the jails and VMs this node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environments {
    /// `environments.jails` then `environments.bhyve`, in file order.
    pub patterns: Vec<EnvPattern>,
    /// How long one `jstop`/`bstop` may take.
    pub stop_timeout: Duration,
    /// How long one `jstart`/`bstart` may take.
    pub start_timeout: Duration,
}

impl Default for Environments {
    fn default() -> Self {
        Environments {
            patterns: Vec::new(),
            stop_timeout: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> EnvPattern {
        EnvPattern {
            pattern: p.to_owned(),
            kind: EnvKind::Jail,
        }
    }

    #[test]
    fn globs_match_like_the_shell() {
        assert!(pattern("db*").matches("db1"));
        assert!(pattern("db*").matches("db"));
        assert!(!pattern("db*").matches("web1"));
        assert!(pattern("w?b*1").matches("web-01"));
        assert!(pattern("*").matches(""));
        assert!(!pattern("web1").matches("web10"));
        assert!(pattern("a*b*c").matches("aXbYbZc"));
        assert!(!pattern("a*b*c").matches("aXbYbZ"));
    }
}
