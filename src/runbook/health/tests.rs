use super::*;
use crate::config::{parse_with_hostname, EnvKind};

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[node]
name = "n1"
[vrrp]
interface = "em0"
vrid = 51
priority = 150
virtual_ips = ["192.0.2.100/24"]
[cbsd]
workdir = "/usr/jails"
[storage]
kind = "hast"
resource = "jails"
[nfs]
export_network = "192.0.2.0/24"
{extra}
"#
    );
    parse_with_hostname(&text, std::path::Path::new("t.toml"), None).unwrap()
}

fn names(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_master_checks_its_services_exports_mounts_listener_storage_and_vip() {
    let checks = master_checks(&config(""));
    let ids: Vec<String> = checks.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "service rpcbind",
            "service nfsuserd",
            "service mountd",
            "service nfsd",
            "service statd",
            "service lockd",
            "exports",
            "mountd exports",
            "storage mounts",
            "nfsd listening",
            "storage",
            "vip",
        ]
    );
    let by = |id: &str| checks.iter().find(|c| c.id.to_string() == id).unwrap();
    assert_eq!(names(&by("service nfsd").repair), ["start nfsd"]);
    assert_eq!(
        names(&by("exports").repair),
        ["write exports", "start mountd"]
    );
    assert_eq!(
        names(&by("mountd exports").repair),
        ["write exports", "start mountd"]
    );
    let asks = &by("mountd exports").probe;
    let Action::Run(checked) = &asks.action else {
        panic!("{asks:?}");
    };
    assert_eq!(
        checked.command.argv,
        ["/usr/bin/showmount", "-E", "127.0.0.1"]
    );
    // NFSv4 only: mountd runs -R, without the MOUNT protocol or rpcbind.
    let v4 = master_checks(&config("v4_only = true"));
    assert!(v4.iter().all(|c| c.id != CheckId::MountdExports));
    assert!(v4.iter().any(|c| c.id == CheckId::Exports));
    assert_eq!(
        names(&by("storage mounts").repair),
        [
            "mount /store",
            "bind jails-data",
            "bind jails-system",
            "bind jails-rcconf",
            "bind jails-fstab"
        ]
    );
    assert_eq!(
        names(&by("nfsd listening").repair),
        ["stop nfsd", "start nfsd"]
    );
    assert_eq!(names(&by("vip").repair), ["add vip", "arp burst"]);
    assert!(by("storage").repair.is_empty());
    assert_eq!(by("storage").judgement.response, Response::Alert);
    // A check runs under health.timeout, not the step's own.
    assert!(checks
        .iter()
        .all(|c| c.probe.timeout == config("").health.timeout));
}

#[test]
fn the_service_check_is_the_promote_steps_probe() {
    let checks = master_checks(&config(""));
    let nfsd = checks
        .iter()
        .find(|c| c.id == CheckId::Service("nfsd".into()))
        .unwrap();
    let Action::Ensure(ensure) = &nfsd.probe.action else {
        panic!("{:?}", nfsd.probe.action)
    };
    assert_eq!(
        ensure.probe.command.display(),
        "/usr/sbin/service nfsd onestatus"
    );
}

#[test]
fn disabled_health_has_no_built_in_checks_but_keeps_tracks() {
    let config = config(
        r#"
[health]
enabled = false
[[track]]
name = "db"
command = ["/usr/local/bin/check-db"]
weight = -50
"#,
    );
    assert!(master_checks(&config).is_empty());
    let env = Env {
        name: "web1".into(),
        kind: EnvKind::Jail,
    };
    assert!(follower_checks(&config, true, &[env]).is_empty());
    let tracks = tracks(&config);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].judgement.response, Response::Weight(-50));
}

#[test]
fn a_follower_checks_each_mount_and_each_running_environment() {
    let config = config("");
    let env = Env {
        name: "web1".into(),
        kind: EnvKind::Jail,
    };
    let checks = follower_checks(&config, true, std::slice::from_ref(&env));
    let ids: Vec<String> = checks.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "nfs mount jails-data",
            "nfs mount jails-system",
            "nfs mount jails-rcconf",
            "nfs mount jails-fstab",
            "environment web1"
        ]
    );
    let web1 = checks.last().unwrap();
    assert_eq!(
        names(&web1.repair),
        ["check lock of web1", "register web1", "start web1"]
    );
    assert_eq!(web1.judgement.response, Response::Restart);
    // Not mounted (no master yet): only the environments.
    assert_eq!(follower_checks(&config, false, &[env]).len(), 1);
}
