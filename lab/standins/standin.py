#!/usr/bin/env python3
"""Stand-in for the FreeBSD tools the runbooks run (service, mount, umount,
mount_nfs, cbsd, hastctl, fsck, zpool, kldstat, sockstat, ifconfig) and
those `doctor` reads (sysrc, sysctl, pkg).

Installed as one symlink per tool name in a directory that also holds
`standin.json` (in the tests and the lab, a link to the thin client
`rcbsd-standin`, which runs the call in `standin.py serve`: see "the
stand-in server" at the end):

    {"node": "node1",            # this node's name (cbsd lock files)
     "state": ".../state.json",  # per-node state (mounts, services, envs...)
     "log": ".../calls.jsonl",   # every call: argv, cwd, selected env
     "cluster_log": ".../cluster.jsonl",  # env start/stop of every node
     "rules": ".../rules.json",  # [{"match": [...], "action": "fail"|"hang",
                                 #   "times": 1, "exit": 1, "stderr": "..."}]
                                 # ("delay" sleeps "seconds" then answers;
                                 #  without "times" a rule never wears out)
     "workdir": "/.../usr/jails",         # CBSD workdir (jregister)
     "nfs_server": "/.../shared",         # where VIP:/x is served from
     "devices": {"/.../dev/hast/cbsd": "/.../disk"},  # optional: what a
                                 # device mount shows (a HAST provider's data)
     "exports": "/.../etc/exports",  # what `service mountd onestart` and
                                 # `onereload` read (below)
     "time_scale": 1.0,          # optional: multiplies mount_nfs's 60 s
                                 # sleep between its own tries (tests: 0.01)
                                 # and the delay before /dev/hast/RES shows
     "address": "10.0.0.12",     # optional: this node's address as an NFS
                                 # client (matched against the exports)
     "server": {"node": "node1", "state": ".../state.json"},
                                 # optional, without "cluster": the node
                                 # whose nfsd serves VIP:/path (its state);
                                 # "answers": false makes it silent
     "stable_restart": ".../var/db/nfs-stablerestart",
                                 # optional: nfsd's stable restart file
                                 # (default: var/db/ next to "state")
     "cluster": ".../nodes.json",  # optional: the cluster registry, below
     "freezer_prefix": "rcbsd-standin-PID"}  # the freezer groups of hangs
                                 # (see "a gone NFS server" below)

mountd: `service mountd onestart` and `onereload` read "exports" the way
usr.sbin/mountd/mountd.c (`get_exportlist_one`) does and keep the result
in the state ("mountd"), its complaints in the state's "syslog": the first
`V4:` line sets the NFSv4 root, a later `V4:` line with the same root adds
its clients, one naming another root is dropped ("different V4 dirpath"),
a line with both `-network` and hosts is dropped ("network/host
conflict"). Like mountd, the reload itself still succeeds: the dropped
line only shows when a client mounts.

mount_nfs follows sbin/mount_nfs/mount_nfs.c: it contacts the server
(`getnfsargs`: for NFSv4 only a connect to nfsd and a NULL call), and
while that fails with a remote error it prints the error, stops after
`retrycnt` tries (an unset retrycnt is 0: forever) and sleeps 60 s
(`rtm_ifinfo_sleep(60)`; times "time_scale") between tries. Then nmount(2)
asks the server for the path: that fails at once, without retries, when
mountd's state has no `V4:` root above the path, or no line exporting
it, to this client. Without "server" or "cluster", VIP:/path is
"nfs_server"/path and always answers.

With a cluster registry (the network tests and the lab), `mount_nfs` is a
client of the other nodes' stand-ins: the registry lists every node's
network namespace, root directory (its "/"), state and exports file. The
server answers only when exactly one node's namespace holds VIP and VIP
answers from this namespace (a TCP connect to port 2049 is refused, not
timed out); it refuses the connection unless its state says nfsd runs;
the path must then be exported as above (paths are relative to each
node's root, as /store is the same path on every real node; the client
address is this namespace's source address toward VIP). So a follower
that mounts before the new master is ready fails and retries. Not
modelled: TCP's connect timeout (a silent server fails at once, with the
message the real one prints when its connect gives up), hostnames and
netgroups in exports lines, `-alldirs`.

It answers like the real tools: `service X onestatus` exit 0/1 with rc.subr's
words, "already running?" and exit 1 on a second start, "Cannot 'start'"
and exit 0 for a plain start, `mount -p` in fstab(5) format, CBSD's jstatus
with its inverted exit code (1 = registered) and the jid on stdout,
`cbsd jorder`/`border` with the registered jails/VMs' names, `cbsd
junregister` refusing a running one ("Jail is active"), CBSD's `err`
(subr/nc.subr: the message on stdout, exit 1) for a registered VM without
its jails-system/J/local.sqlite, a second jstart/bstart and a jstop of a
stopped jail, jstart's lock rules (sudoexec/jstart; bstart writes no lock),
`zpool` by
OpenZFS's import rules (the zpool comment under "storage" below: `-f`, the
multihost activity check, read-only imports, `cachefile`; an export
refused while a dataset is busy), `hastctl` failing without hastd (exit
71) and `/dev/hast/RES` created a moment after `role primary`, `fsck -p`
exiting 8 on a device in state["fsck_unexpected"], `umount` failing with
"Device busy" while a running environment's data or a path in
state["open_files"] is under the mount (`-f` forces it) or a nullfs mount
sits on it (`-f` or not; see mount_busy). Mounts
are emulated with symlinks so that files under the workdir behave as they
would (dir.id, lock files, write probes). A rule whose tokens all appear,
in order, in [tool, *args] makes the call fail or hang.

NFS mounts keep the file system (fsid) and nfsd instance they were
served with; when the server restarts or another node answers for the
address, an access answers ESTALE for another file system, reclaims the
client's state when the new nfsd read the client's stable restart record
at its start, and otherwise loses that state without an error, as
FreeBSD's client does (see "NFSv4 server state across a server change").
A call hung on a gone server goes on once a server answers again.

The read-only tools answer from the state file: `sysrc -n NAME` from
state["rc_conf"] over FreeBSD's /etc/defaults/rc.conf (a null value: set
nowhere, as on a release whose defaults lack it), `sysctl -n NAME` from
state["sysctl"] (kern.hostid is the hostid zpool's rules use), `pkg config
NAME` from state["pkg_config"] over a current pkg's options.
"""

import fcntl
import json
import os
import sys
import time
import zlib


def load_config():
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    with open(os.path.join(here, "standin.json")) as f:
        config = json.load(f)
    config["dir"] = here
    return config


class Locked:
    """An exclusive flock on a file, for concurrent stand-ins."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "a+")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def append_line(path, record):
    with Locked(path + ".lock"):
        with open(path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def is_subsequence(needle, haystack):
    it = iter(haystack)
    return all(any(token == h for h in it) for token in needle)


def take_rule(config, words):
    """The first matching rule (its `times` decremented), or None."""
    path = config.get("rules")
    if not path:
        return None
    with Locked(path + ".lock"):
        rules = read_json(path, [])
        for rule in rules:
            if rule.get("times", 1) == 0:
                continue
            if is_subsequence(rule.get("match", []), words):
                if "times" in rule:
                    rule["times"] -= 1
                write_json(path, rules)
                return rule
    return None


def out(text="", code=0, err=""):
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if err:
        sys.stderr.write(err if err.endswith("\n") else err + "\n")
    sys.stdout.flush()
    sys.exit(code)


# ---- mounts ---------------------------------------------------------------


def under_mount(target):
    """Where a non-empty directory waits while something is mounted on it."""
    return os.path.join(os.path.dirname(target), "." + os.path.basename(target) + ".under-mount")


def do_mount_link(target, real):
    """Emulates a mount of `real` on `target` with a symlink. A non-empty
    directory is hidden, not lost, as under a real mount (e.g. what
    junregister wrote to the local jails-rcconf before mounting)."""
    if os.path.islink(target):
        os.unlink(target)
    elif os.path.isdir(target):
        if os.listdir(target) and not os.path.exists(under_mount(target)):
            os.rename(target, under_mount(target))
        else:
            os.rmdir(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(real, target)


def undo_mount_link(target):
    if os.path.islink(target):
        os.unlink(target)
        if os.path.isdir(under_mount(target)):
            os.rename(under_mount(target), target)
        else:
            os.makedirs(target, exist_ok=True)


def mount_p(state, fstype):
    lines = []
    for m in state.get("mounts", []):
        if fstype is None or m["type"] == fstype:
            lines.append("\t".join([m["source"], m["target"], m["type"], m.get("options", "rw"), "0", "0"]))
    return "\n".join(lines)


def tool_mount(config, state, args):
    if args[:1] == ["-p"]:
        fstype = args[2] if args[1:2] == ["-t"] and len(args) > 2 else None
        out(mount_p(state, fstype))
    if args[:2] == ["-t", "nullfs"] and len(args) == 4:
        source, target = args[2], args[3]
        if not os.path.isdir(source):
            out(code=1, err=f"mount_nullfs: {source}: No such file or directory")
        do_mount_link(target, source)
        state.setdefault("mounts", []).append({"source": source, "target": target, "type": "nullfs", "t": time.time()})
        return
    if len(args) == 2:
        device, target = args
        if not os.path.exists(device):
            out(code=1, err=f"mount: {device}: No such file or directory")
        backing = config.get("devices", {}).get(device)
        if backing is not None:
            do_mount_link(target, backing)
        state.setdefault("mounts", []).append(
            {"source": device, "target": target, "type": "ufs", "linked": backing is not None,
             "fsid": ufs_fsid(config, device, backing), "t": time.time()})
        return
    out(code=64, err="usage: mount [-t type] special node | mount -p [-t type]")


CLONE_NEWNET = 0x40000000


def holds_address(netns, address):
    """Whether namespace `netns` has `address` on an interface: binding to
    an address that is not local fails there (ip_nonlocal_bind is 0)."""
    import ctypes  # only the cluster mode needs these: keep startup short
    import socket

    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(os.path.join("/run/netns", netns), os.O_RDONLY)
        except OSError:
            return False
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((address, 0))
                    return True
                except OSError:
                    return False
        finally:
            os.close(target)
    finally:
        libc.setns(own, CLONE_NEWNET)
        os.close(own)


def reachable(address):
    """A TCP connect to port 2049 from this namespace: refused (nobody
    listens: the stand-in nfsd is not a process) proves the address
    answers; a timeout or no route does not."""
    import socket

    try:
        with socket.create_connection((address, 2049), timeout=0.5):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def exports_lines(exports_file):
    """The logical lines of an exports(5) file as mountd.c `get_line`
    reads them: a trailing backslash continues a line, blank lines go."""
    try:
        with open(exports_file) as f:
            raw = f.read().splitlines()
    except FileNotFoundError:
        return []
    lines, current = [], ""
    for line in raw:
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current)
        current = ""
    if current.strip():
        lines.append(current)
    return lines


# Options of exports(5) that take the next word when written without "=".
EXPORT_OPTIONS_WITH_ARGUMENT = ("-maproot", "-mapall", "-network", "-mask", "-sec", "-index")


def mountd_load(exports_file):
    """What mountd makes of `exports_file`, following mountd.c
    `get_exportlist_one`: {"v4root", "v4clients", "exports", "log"}."""
    loaded = {"v4root": None, "v4clients": [], "exports": [], "log": []}

    def bad(line, reason=None):
        # mountd.c getexp_err
        loaded["log"].append(f"bad exports list line '{line}'" + (f": {reason}" if reason else ""))

    for line in exports_lines(exports_file):
        words = line.split()
        if words[0].startswith("#"):
            continue
        v4 = line.lstrip().startswith("V4:")
        if v4:
            words = line.lstrip()[3:].split()
        dirs, hosts, network, mask = [], [], None, None
        i = 0
        while i < len(words):
            word = words[i]
            if word.startswith("-"):
                name, _, value = word.partition("=")
                if not value and name in EXPORT_OPTIONS_WITH_ARGUMENT and i + 1 < len(words):
                    i += 1
                    value = words[i]
                if name == "-network":
                    network = value
                elif name == "-mask":
                    mask = value
            elif word.startswith("/"):
                dirs.append(word)
            else:
                hosts.append(word)
            i += 1
        if network and mask and "/" not in network:
            network = f"{network}/{sum(bin(int(x)).count('1') for x in mask.split('.'))}"
        if network and hosts:
            bad(line, "network/host conflict")
            continue
        clients = {"network": network} if network else ({"hosts": hosts} if hosts else {"all": True})
        if v4:
            if not dirs:
                bad(line, "V4:root, no dirp, ignored")
                continue
            if len(dirs) > 1:
                bad(line, "Multiple V4 dirs")
                continue
            if loaded["v4root"] is None:
                loaded["v4root"] = dirs[0]
            elif loaded["v4root"] != dirs[0]:
                # mountd.c: syslog "different V4 dirpath %s", then the line
                # (cut after the path, where mountd stopped reading it).
                loaded["log"].append(f"different V4 dirpath {dirs[0]}")
                bad(line[: line.index(dirs[0]) + len(dirs[0])])
                continue
            loaded["v4clients"].append(clients)
        else:
            loaded["exports"].append({"dirs": dirs, "clients": clients})
    if loaded["v4root"] is None:
        # mountd.c get_exportlist, with nfsv4_server_enable=YES.
        loaded["log"].append("NFSv4 requires at least one V4: line")
    return loaded


def client_allowed(clients, address):
    """Whether `address` (None: unknown) is one of an exports line's
    clients: everyone, a -network, or a list of host addresses."""
    import ipaddress

    if clients.get("all") or address is None:
        return True
    if clients.get("network"):
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(clients["network"], strict=False)
        except ValueError:
            return False
    return address in clients.get("hosts", [])


def exported_to(loaded, path, address):
    """Whether mountd's state `loaded` lets `address` mount `path` over
    NFSv4: the V4: root holds the path and names the client, and a line
    exports the path itself to it."""
    if not loaded or loaded.get("v4root") is None:
        return False
    root = loaded["v4root"].rstrip("/")
    if not (path == root or path.startswith(root + "/")):
        return False
    if not any(client_allowed(c, address) for c in loaded.get("v4clients", [])):
        return False
    return any(path in e["dirs"] and client_allowed(e["clients"], address) for e in loaded.get("exports", []))


def source_address(address):
    """This namespace's source address toward `address` (a UDP connect
    sends nothing), or None."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address, 2049))
            return s.getsockname()[0]
    except OSError:
        return None


def mount_nfs_errstr(host, path, what):
    """nfs_tryproto's message when nfsd cannot be reached for NFSv4:
    "[%s] %s:%s: %s" with clnt_spcreateerror("nfsd: RPCPROG_NFS"), whose
    RPC_SYSTEMERROR text is "RPC: Remote system error - <strerror>"."""
    return f"[tcp] {host}:{path}: nfsd: RPCPROG_NFS: RPC: Remote system error - {what}"


def nfs_server(config, host):
    """(server entry, its state, client address) when VIP `host` answers
    from here, or the error string of a remote failure."""
    if config.get("cluster"):
        nodes = read_json(config["cluster"], [])
        # Nobody (or two nodes) answering for the VIP: the connect gets no
        # answer (or a mix of them); mount_nfs sees it time out.
        if not reachable(host):
            return None, "Operation timed out"
        holders = [n for n in nodes if holds_address(n["netns"], host)]
        if len(holders) != 1:
            return None, "Operation timed out"
        server, address = holders[0], source_address(host)
    else:
        server = config["server"]
        if server.get("answers", True) is False:
            return None, "Operation timed out"
        address = config.get("address")
    state = read_json(server["state"], {})
    if "nfsd" not in state.get("services", []):
        return None, "Connection refused"
    return (server, state, address), None


def mount_nfs_split(source):
    """sbin/mount_nfs/mount_nfs.c getnfsargs: "[host]:path" when the spec
    starts with '[' and the ']' is followed by ':' (an IPv6 address),
    else split at the last ':' (strrchr), else "path@host" (deprecated,
    with a warning); without either, warnx "no <host>:<dirpath> nfs-name"
    and exit 1. Trailing slashes of the path are dropped."""
    close = source.find("]", 1)
    if source.startswith("[") and close != -1 and source[close + 1:close + 2] == ":":
        host, remote = source[1:close], source[close + 2:]
    elif ":" in source:
        host, _, remote = source.rpartition(":")
    elif "@" in source:
        sys.stderr.write("mount_nfs: path@server syntax is deprecated, use server:path\n")
        remote, _, host = source.rpartition("@")
    else:
        out(code=1, err="mount_nfs: no <host>:<dirpath> nfs-name")
    while len(remote) > 1 and remote.endswith("/"):
        remote = remote[:-1]
    return host, remote


def mount_nfs_unlocked(config, args):
    """mount_nfs -o OPTIONS VIP:/path TARGET up to nmount(2), outside the
    state lock (its sleeps must not block this node's other tools): the
    mount's record, or an exit like mount_nfs's."""
    if len(args) != 4 or args[0] != "-o":
        out(code=64, err="usage: mount_nfs -o options host:path node")
    options, source, target = args[1], args[2], args[3]
    retrycnt = -1
    for option in options.split(","):
        name, _, value = option.partition("=")
        if name in ("bg", "bgnow"):
            out(code=64, err=f"standin: mount_nfs -o {name} is not modelled")
        if name == "retrycnt":
            # mount_nfs.c: strtol, "illegal retrycnt value" unless >= 0.
            if not value.isdigit():
                out(code=1, err=f"mount_nfs: illegal retrycnt value -- {value}")
            retrycnt = int(value)
    if retrycnt == -1:
        # mount_nfs.c: "The default is to keep retrying forever."
        retrycnt = 0
    host, remote = mount_nfs_split(source)
    if not (config.get("cluster") or config.get("server")):
        if host in read_json(config["state"], {}).get("gone_servers", []):
            # A server declared gone (World.server_gone): nobody answers.
            out(code=1, err=mount_nfs_errstr(host, remote, "Operation timed out"))
        real = os.path.join(config["nfs_server"], remote.lstrip("/"))
        if not os.path.isdir(real):
            out(code=1, err=f"mount_nfs: nmount: {target}: No such file or directory")
        return {"source": source, "target": target, "real": real, "options": options,
                "server": None}
    scale = float(config.get("time_scale", 1.0))
    # mount_nfs.c getnfsargs: try, print the error, count the try, sleep.
    while True:
        found, error = nfs_server(config, host)
        if found is not None:
            break
        sys.stderr.write(mount_nfs_errstr(host, remote, error) + "\n")
        sys.stderr.flush()
        # "If retrycnt == 0, we are to keep retrying forever. Otherwise
        # decrement it, and exit if it hits zero."
        if retrycnt != 0:
            retrycnt -= 1
            if retrycnt == 0:
                sys.exit(1)
        time.sleep(60 * scale)
    server, state, address = found
    # nmount(2): the server looks the path up under its V4: root. A path
    # it does not export to this client is refused (NFS4ERR_ACCESS);
    # mount_nfs.c err(1, "nmount: %s...") prints it and exits, no retry.
    if config.get("cluster"):
        nodes = read_json(config["cluster"], [])
        if not any(n["node"] == config["node"] for n in nodes):
            out(code=1, err=f"standin: {config['node']} is not in the cluster registry")
    path = server_path(config, server, remote)
    if path is None:
        out(code=1, err=f"mount_nfs: nmount: {target}: No such file or directory")
    if not exported_to(state.get("mountd"), path, address):
        out(code=1, err=f"mount_nfs: nmount: {target}: Permission denied")
    if not os.path.isdir(path):
        out(code=1, err=f"mount_nfs: nmount: {target}: No such file or directory")
    # The client's first open makes the server write its record (see
    # "NFSv4 server state" below); CBSD opens files on the mount at once.
    write_stable_record(server, config["node"])
    return {"source": source, "target": target, "real": path, "options": options,
            "server": server.get("node"), "fsid": export_fsid(server, state, path),
            "boot": state.get("nfsd_boot")}


def server_path(config, server, remote):
    """Where `remote` (the path of VIP:/path) is on `server`'s node, or
    None: in a cluster each node's paths are under its own root."""
    if not config.get("cluster"):
        return os.path.join(config["nfs_server"], remote.lstrip("/"))
    nodes = read_json(config["cluster"], [])
    me = next((n for n in nodes if n["node"] == config["node"]), None)
    if me is None:
        return None
    root = me["root"].rstrip("/")
    if not remote.startswith(root + "/"):
        return None
    return server["root"].rstrip("/") + remote[len(root):]


def record_mount_nfs(state, mount):
    do_mount_link(mount["target"], mount["real"])
    state.setdefault("mounts", []).append(
        {"source": mount["source"], "target": mount["target"], "type": "nfs",
         "options": mount["options"], "server": mount["server"], "fsid": mount.get("fsid"),
         "boot": mount.get("boot"), "t": time.time()})


def tool_umount(config, state, args):
    flags = [a for a in args if a.startswith("-")]
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 1 or any(f not in ("-f", "-N") for f in flags):
        out(code=64, err="usage: umount [-fN] node")
    target = paths[0]
    mounts = state.get("mounts", [])
    found = [m for m in mounts if m["target"] == target]
    if not found:
        out(code=1, err=f"umount: {target}: not a file system root directory")
    mount = found[-1]
    if mount["type"] == "nfs" and "-N" not in flags and nfs_server_answer(config, state, mount)[0] == "gone":
        # sbin/umount/umount.c: without -N, unmount(2) of an NFSv4 mount
        # flushes and tells the server (nfscl_umount; -f still waits for
        # the RPCs in progress): with the server gone it hangs. Stricter
        # than the real -f, which gives up after about a minute.
        raise Hang(mount, "umount", target)
    if mount_busy(config, state, mount, forced=bool(flags)):
        # umount.c umountfs: warn("unmount of %s failed") on unmount(2)'s
        # EBUSY, and the file system stays mounted; exit 1.
        out(code=1, err=f"umount: unmount of {target} failed: Device busy")
    state["mounts"] = [m for m in mounts if m is not mount]
    if mount["type"] in ("nfs", "nullfs") or mount.get("linked"):
        undo_mount_link(target)
    if "-N" in flags:
        # umount.c: nfssvc(NFSSVC_FORCEDISM) fails every RPC in progress
        # on the mount: what hung on it wakes up with an I/O error.
        thaw(config, mount)


def under(path, top):
    top = top.rstrip("/") or "/"
    return path == top or path.startswith(top.rstrip("/") + "/")


def paths_in_use(config, state):
    """What processes of this node hold open: each running jail's or VM's
    data, <workdir>/jails-data/J-data (CBSD's layout: a jail's root, a
    VM's disk images; jail(8) and bhyve(8) keep them open while it runs),
    and state["open_files"] (a test's open file or shell cwd: what
    `fstat -f` would name)."""
    workdir = config.get("workdir", "/nonexistent")
    paths = [os.path.join(workdir, "jails-data", f"{name}-data") for name in state.get("running", {})]
    return paths + list(state.get("open_files", []))


def mount_busy(config, state, mount, forced):
    """Why unmount(2) of `mount` fails with EBUSY, or None.
    sys/kern/vfs_mount.c dounmount: a file system under a nullfs mount
    (its mnt_uppers list not empty) is busy, MNT_FORCE or not (umount(8)
    -f and -N pass MNT_FORCE, never MNT_RECURSE). Then the file system's
    unmount flushes its vnodes (vflush, e.g. ffs_flushfiles, nullfs_unmount,
    nfs_unmount): one still in use is EBUSY unless MNT_FORCE (FORCECLOSE)
    closes it under its user. Not modelled: a mount on a subdirectory."""
    target = mount["target"]
    for other in state.get("mounts", []):
        if other is not mount and other["type"] == "nullfs" and under(other["source"], target):
            return f"nullfs {other['target']} is mounted from it"
    if forced:
        return None
    for path in paths_in_use(config, state):
        if under(path, target):
            return f"{path} is in use"
    return None


# ---- NFSv4 server state across a server change --------------------------------
#
# What decides whether a client's mount keeps working when another node
# (or a restarted nfsd) answers for the server's address:
#
# * File handles name the file system: nfsvno_getfh (sys/fs/nfsserver/
#   nfs_nfsdport.c) puts mp->mnt_stat.f_fsid in every handle, and the new
#   server maps a handle back with vfs_busyfs(fsid): an fsid it does not
#   have mounted is NFSERR_STALE, ESTALE to the caller. The fsid of UFS is
#   the superblock's fs_id (sys/ufs/ffs/ffs_vfsops.c ffs_mountfs), on
#   the disk HAST replicates: the same on every node; a ZFS dataset's is
#   derived from its guid (zfs_vfsops.c zfs_domount,
#   dmu_objset_fsid_guid), which moves with the pool; a nullfs mount gets
#   a new one at every mount (sys/fs/nullfs/null_vfsops.c nullfs_mount:
#   vfs_getnewfsid), as does tmpfs (not modelled); a node's own root file
#   system has its own. `export_fsid` is that rule; each NFS mount keeps
#   the fsid of what it mounted ("fsid") and the nfsd instance ("boot",
#   nfsrvboottime) that served it.
# * A server that restarts (the same node, or another node with the same
#   file system) knows the client's state only through its stable restart
#   records: nfsd opens /var/db/nfs-stablerestart at start (usr.sbin/nfsd/
#   nfsd.c open_stable: O_RDWR, else O_CREAT; a symlink is followed; it
#   logs "Can't open ..." and exits when that fails) and the kernel reads
#   the records once (sys/fs/nfsserver/nfs_nfsdstate.c nfsrv_setupstable).
#   A client's record is written when it first gets state (nfsrv_openctrl:
#   "the client just confirmed its first open", nfsrv_writestable
#   NFSNST_NEWSTATE); the stand-in writes it at mount, as CBSD opens files
#   on the mount at once (a client that never opened has nothing to lose).
#   A reclaim from a client without a record read at start gets
#   NFSERR_NOGRACE (nfsrv_openctrl/nfsrv_lockctrl: nfsrv_checkstable).
#   Records are JSON lines {"client": NODE} in the file the node's path
#   leads to: with the agent's links on the shared storage they move with
#   it, local ones do not. This node's path is "stable_restart" in
#   standin.json, else var/db/nfs-stablerestart under the node's root
#   (the directory of its state file); a server's likewise. Not modelled:
#   the .bak copy (copy_stable), the end of grace (reclaims after it get
#   NOGRACE too; a client reclaims at its first RPC, well within it), the
#   records of clients that did not reclaim being dropped at grace end.
# * The client (sys/fs/nfsclient/nfs_clstate.c nfscl_recover), on
#   NFSERR_STALECLIENTID after the restart, reclaims every open and lock.
#   A reclaim refused with NFSERR_NOGRACE frees the open (nfscl_freeopen)
#   and its locks: nothing tells the process. Its next read or write goes
#   on with the special stateid of all zeros (nfscl_getstateid: "If no
#   Open is found, just return error and the special stateid"; nfsrpc_read
#   ignores that error). So lost state is silent: I/O goes on, locks are
#   gone (nfscl_hasexpired: "XXX Someday it should post a signal to the
#   process(es) that hold the state"). The stand-in answers such calls as
#   the real kernel does and notes the loss in the mount ("lost_state")
#   and in state["nfs_state_lost"], for the tests and the lab: no probe
#   of the client can see it.


def ufs_fsid(config, device, backing):
    """The fsid of UFS on `device`: its superblock's fs_id, which lives on
    the disk (ffs_mountfs). A HAST provider's disk is replicated: the
    same file system on every node."""
    if backing is not None:
        return "ufs:" + os.path.realpath(backing)
    hast_dir = config.get("hast_dev_dir")
    if hast_dir and os.path.dirname(device.rstrip("/")) == hast_dir.rstrip("/"):
        return "ufs:hast/" + os.path.basename(device)
    return f"ufs:{config['node']}:{device}"


def export_fsid(server, server_state, path):
    """The fsid of the file system `path` is on at node `server` (its
    state `server_state`): the innermost mount above it, a ZFS pool's
    mounted datasets, else the node's own root file system."""
    best = None
    for m in server_state.get("mounts", []):
        if m["type"] in ("ufs", "nullfs") and under(path, m["target"]):
            if best is None or len(m["target"]) > len(best["target"]):
                best = m
    for name, record in server_state.get("pools", {}).items():
        if not isinstance(record, dict):
            continue
        mountpoint = record.get("mountpoint")
        if record.get("imported") and record.get("mounted") and mountpoint and under(path, mountpoint):
            if best is None or len(mountpoint) > len(best["target"]):
                guid = record.get("guid") or "%08x" % zlib.crc32(name.encode())
                best = {"type": "zfs", "target": mountpoint, "fsid": f"zfs:{name}:{guid}"}
    if best is None:
        return f"root:{server.get('node')}"
    if best["type"] == "nullfs":
        # vfs_getnewfsid: this mount's own, gone with it.
        return f"nullfs:{server.get('node')}:{best['target']}:{best.get('t')}"
    return best.get("fsid") or f"ufs:{server.get('node')}:{best['source']}"


def stable_restart_path(entry):
    """nfsd's /var/db/nfs-stablerestart on node `entry` (a server entry or
    this node's standin.json)."""
    return entry.get("stable_restart") or os.path.join(
        os.path.dirname(entry["state"]), "var/db/nfs-stablerestart")


def local_dir(path):
    """A node's /var/db is always there; a link's target directory (on
    the storage) only when the storage is."""
    if not os.path.islink(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)


def write_stable_record(server, client):
    """nfsrv_writestable of `client`'s record at server `server` (through
    the link, if the node's path is one)."""
    path = stable_restart_path(server)
    try:
        local_dir(path)
        with open(path, "a") as f:
            f.write(json.dumps({"client": client}) + "\n")
    except OSError:
        pass  # nfsd holds the file open; not reached while it runs


def nfsd_read_stable(config, state):
    """nfsd's start (open_stable, nfsrv_setupstable): the clients that may
    reclaim, or None when the file cannot be opened (nfsd exits)."""
    path = stable_restart_path(config)
    try:
        local_dir(path)
        with open(path, "a+") as f:
            f.seek(0)
            lines = f.read().splitlines()
    except OSError:
        state.setdefault("syslog", []).append(
            {"daemon": "nfsd", "message": "Can't open /var/db/nfs-stablerestart", "t": time.time()})
        return None
    clients = set()
    for line in lines:
        try:
            clients.add(json.loads(line)["client"])
        except (ValueError, KeyError, TypeError):
            continue
    state["nfsd_stable"] = {"clients": sorted(clients), "file": os.path.realpath(path)}
    # nfsrvboottime: what tells clients the server restarted.
    state["nfsd_boot"] = time.time()
    return clients


# ---- a gone NFS server -------------------------------------------------------
#
# mount_nfs(8): on a hard mount, operations against a server that does not
# answer "hang uninterruptibly": a kill does not end them, only `umount -N`
# (nfssvc(NFSSVC_FORCEDISM) in sbin/umount/umount.c) does. The stand-in
# models that with a cgroup-v1 freezer: a frozen task stays, even after
# SIGKILL, until the group is thawed (the freezer's documented behaviour;
# cgroup v2 would let SIGKILL through). One group per node and mount;
# `umount -N` of the mount and `lab-reboot` thaw it (the call then fails
# with EIO), and so does a server answering again (a hard mount retries
# the RPC until it is answered: the call goes on and gets that server's
# answer; see wait_for_server); the teardown of the process that built
# the world (its pid is in "freezer_prefix") removes it.

FREEZER = "/sys/fs/cgroup/freezer"


class Hang(Exception):
    """Raised by a tool that touches a mount whose server is gone; main()
    hangs after releasing the state lock. `with_parent`: the program that
    ran the tool hangs with it (lab-nfs-access)."""

    def __init__(self, mount, tool, path, with_parent=False):
        super().__init__(path)
        self.mount, self.tool, self.path = mount, tool, path
        self.with_parent = with_parent


def nfs_server_answer(config, state, mount):
    """What the server of NFS `mount` does with an RPC, as (answer, server
    entry, server state): "answers"; "reclaimed" or "lost" (the server
    restarted, or another node serves the address, with the same file
    system: the client's recovery reclaims its state, or cannot, see
    "NFSv4 server state" below; either way the call goes on); "stale"
    (another file system answers: its file handles differ, NFSERR_STALE);
    "gone" (nobody answers, or nfsd refuses: a hard mount waits for ever).
    Without a cluster registry or a "server" a test declares a host gone
    in state["gone_servers"]. Reads only: `settle` records a recovery."""
    host = mount["source"].partition(":")[0]
    if host in state.get("gone_servers", []):
        return "gone", None, None
    if not (config.get("cluster") or config.get("server")):
        return "answers", None, None
    # A hard mount retries for ever whether nobody answers or nfsd
    # refuses: both are gone to the processes using it.
    found, _ = nfs_server(config, host)
    if found is None:
        return "gone", None, None
    server, server_state, _ = found
    # "serving": the node whose nfsd the client recovered with since it
    # mounted from "server".
    same_node = server.get("node") == mount.get("serving", mount.get("server"))
    if mount.get("fsid") is None:
        # A mount a test wrote without the file system's identity.
        return ("answers" if same_node else "stale"), server, server_state
    if same_node and server_state.get("nfsd_boot") == mount.get("boot"):
        return "answers", server, server_state
    path = server_path(config, server, mount["source"].partition(":")[2])
    if path is None or export_fsid(server, server_state, path) != mount["fsid"]:
        return "stale", server, server_state
    clients = server_state.get("nfsd_stable", {}).get("clients", [])
    return ("reclaimed" if config["node"] in clients else "lost"), server, server_state


def settle(config, state, mount, answer, server, server_state):
    """The client's side of an answer after a server restart (nfscl_recover,
    see "NFSv4 server state"): the mount now talks to the new server
    instance; a failed reclaim is noted, as the stand-in's record of what
    the real kernel drops without a word. The mount's "serving" is then
    the new server's node ("server" stays the one it was mounted from).
    Returns the answer a caller of the file system sees: "reclaimed" and
    "lost" both go on."""
    if answer not in ("reclaimed", "lost"):
        return answer
    for m in state.get("mounts", []):
        if m["target"] == mount["target"] and m["type"] == "nfs":
            # "server" stays who answered the mount: `mount -p` and the
            # lab's convergence tell a remount from a recovery by it.
            m["serving"], m["boot"] = server.get("node"), server_state.get("nfsd_boot")
            # The same file system (fsid) through the new server: the
            # emulation's link follows it, as the client's RPCs now go
            # there (the old server's path is gone with its storage).
            path = server_path(config, server, m["source"].partition(":")[2])
            if path is not None and os.path.isdir(path):
                do_mount_link(m["target"], path)
            if answer == "lost":
                m["lost_state"] = {"server": server.get("node"), "t": time.time()}
                state.setdefault("nfs_state_lost", []).append(
                    {"target": m["target"], "server": server.get("node"), "t": time.time()})
                # A fresh clientid; its next open is new state, recorded.
                write_stable_record(server, config["node"])
    return "answers"


def nfs_mount_of(state, path):
    """The NFS mount `path` is on (the longest mountpoint prefix), or None."""
    best = None
    for m in state.get("mounts", []):
        if m["type"] != "nfs":
            continue
        target = m["target"].rstrip("/")
        if path == target or path.startswith(target + "/"):
            if best is None or len(target) > len(best["target"]):
                best = m
    return best




def hang_if_gone(config, state, tool, path):
    """Raises Hang when `path` is on an NFS mount whose server is gone;
    after a server restart the call recovers the client's state first."""
    mount = nfs_mount_of(state, path)
    if mount is not None and settle(config, state, mount, *nfs_server_answer(config, state, mount)) == "gone":
        raise Hang(mount, tool, path)


def freezer_group(config, mount):
    # The prefix names the process that built the world (its teardown
    # releases the group); the key, this node and mount.
    key = zlib.crc32((config["state"] + "|" + mount["target"]).encode())
    return os.path.join(FREEZER, f"{config.get('freezer_prefix', 'rcbsd-standin-0')}-{key:08x}")


def hang_uninterruptibly(config, hang):
    """Freezes the caller until its server answers again (a hard mount
    retries the RPC for ever: mount_nfs(8) "hard"; then main() runs the
    tool again, with the answer the server now gives) or `umount -N` of
    its mount (then it fails with EIO, as the RPC does) or a reboot.
    Someone must look while the caller is frozen: in a served call the
    server's child (not frozen) does; run directly, the process freezes
    itself, so a watcher it forks first does."""
    group = freezer_group(config, hang.mount)
    caller = CALLER_PID or os.getpid()
    watcher = None
    if CALLER_PID is None:
        watcher = os.fork()
        if watcher == 0:
            try:
                # Not the caller's pipes: whoever reads them to the end
                # must not wait for the watcher.
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                wait_for_server(config, hang, group, exit_on_gone_group=True)
            finally:
                os._exit(0)
    try:
        os.makedirs(group, exist_ok=True)
        # The looking program first: frozen before it can see its tool hang.
        pids = ([parent_pid(caller)] if hang.with_parent else []) + [caller]
        for pid in pids:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        with open(os.path.join(group, "freezer.state"), "w") as f:
            f.write("FROZEN")
    except OSError as e:
        # No cgroup-v1 freezer here: a hang that a kill does end, which
        # is more lenient than the real one. Say so, for the tests.
        append_line(config["state"] + ".lenient", {"node": config["node"], "tool": hang.tool,
                                                   "freezer_unavailable": str(e), "t": time.time()})
    # Frozen from here on (run directly); once thawed, or at once in a
    # served call, wait for the dismount or the server to show.
    wait_for_server(config, hang, group, exit_on_gone_group=False)
    if watcher is not None:
        try:
            os.waitpid(watcher, 0)
        except ChildProcessError:
            pass


# How often a hung call looks whether its server answers again: the
# client's retransmissions, in stand-in time.
HANG_POLL = 0.1


def wait_for_server(config, hang, group, exit_on_gone_group):
    """Returns once the server of `hang.mount` answers again (thawing the
    mount's group: every call hung on it looks again); exits with EIO once
    the mount is gone (`umount -N`, a reboot)."""
    scale = float(config.get("time_scale", 1.0))
    parent, seen = os.getppid(), False
    while True:
        time.sleep(HANG_POLL * min(scale, 1.0))
        if exit_on_gone_group:
            # The watcher: done once the group it saw is gone (the
            # world's teardown released it) or the hung process is.
            seen = seen or os.path.isdir(group)
            if (seen and not os.path.isdir(group)) or os.getppid() != parent:
                return
        # A test moves "server" (the address) while the call hangs.
        config = dict(config, **read_json(os.path.join(config["dir"], "standin.json"), {}))
        state = read_json(config["state"], {})
        mount = next((m for m in state.get("mounts", []) if m["target"] == hang.mount["target"]), None)
        if mount is None:
            if exit_on_gone_group:
                return  # the frozen caller prints the error
            out(code=1, err=f"{hang.tool}: {hang.path}: Input/output error")
        if nfs_server_answer(config, state, mount)[0] != "gone":
            thaw(config, hang.mount)
            return


def parent_pid(pid):
    """The parent of `pid` (proc(5): /proc/PID/stat, the field after the
    state, which follows the command's closing parenthesis)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def tool_lab_nfs_access(config, state, args):
    """lab-nfs-access PATH...: not a FreeBSD tool. The lab's copy of the
    agent's fs-probe child (`rcbsd-lab fs-probe`, the agent's own code on
    the real file system under the emulated mounts) runs it first, for
    the kernel's side of what it is about to do: every look opens a file
    or directory, and an open on NFS is an RPC to the server
    (close-to-open consistency: sys/fs/nfsclient/nfs_clvnops.c nfs_open
    invalidates the attribute cache and asks for GETATTR unless the mount
    has `nocto`, which this mount_nfs does not model). A server that does not
    answer holds the caller on a hard mount until it answers again or
    `umount -N` (mount_nfs(8), as tool_df): here the fs-probe hangs with
    it, frozen, and goes on, or fails with EIO after `umount -N`. A server
    of another file system answers NFSERR_STALE, ESTALE to the caller
    ("Stale NFS file handle", lib/libc/gen/errlst.c); one of the same file
    system lets the client recover its state, or loses it silently (see
    "NFSv4 server state"): the look answers either way."""
    for path in args:
        mount = nfs_mount_of(state, path)
        if mount is None:
            continue
        answer = settle(config, state, mount, *nfs_server_answer(config, state, mount))
        if answer == "gone":
            raise Hang(mount, "fs-probe", path, with_parent=True)
        if answer == "stale":
            out(code=1, err=f"fs-probe: {path}: Stale NFS file handle")


def thaw(config, mount):
    group = freezer_group(config, mount)
    try:
        with open(os.path.join(group, "freezer.state"), "w") as f:
            f.write("THAWED")
    except OSError:
        pass


def thaw_all(config, state):
    """Thaws the group of every NFS mount of this node (a reboot: what hung
    on them is gone; umount -N thawed those of mounts already gone)."""
    for mount in state.get("mounts", []):
        if mount["type"] == "nfs":
            thaw(config, mount)


def tool_df(config, state, args):
    """df -k PATH: statfs(2) of a path on an NFS mount is an RPC to the
    server (no cached answer), so it hangs when the server is gone and
    fails with a stale handle when another server answers (bin/df/df.c)."""
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 1:
        out(code=1, err="standin: only df [-k] PATH is modelled")
    path = paths[0]
    mount = nfs_mount_of(state, path)
    if mount is not None:
        answer = settle(config, state, mount, *nfs_server_answer(config, state, mount))
        if answer == "gone":
            raise Hang(mount, "df", path)
        if answer == "stale":
            out(code=1, err=f"df: {path}: Stale NFS file handle")
    source = mount["source"] if mount else "/dev/ada0p2"
    out(f"Filesystem 1024-blocks Used Avail Capacity  Mounted on\n{source} 1000000 1000 999000 0% {path}")


# ---- services ---------------------------------------------------------------


def tool_service(config, state, args):
    if len(args) != 2:
        out(code=64, err="usage: service name command")
    name, verb = args
    running = state.setdefault("services", [])
    pid = 1000 + len(name)
    if verb in ("start", "stop", "status", "reload"):
        # Disabled in rc.conf: rc.subr refuses and still exits 0.
        out(err=f"Cannot '{verb}' {name}. Set {name}_enable to YES in /etc/rc.conf or use 'one{verb}' instead of '{verb}'.")
    if verb == "onestatus":
        if name in running:
            out(f"{name} is running as pid {pid}.")
        out(f"{name} is not running.", code=1)
    if verb == "onestart":
        if name in running:
            out(code=1, err=f"{name} already running? (pid={pid}).")
        if name == "nfsd" and nfsd_read_stable(config, state) is None:
            # nfsd.c: daemon() first, then open_stable fails: rc.subr saw
            # the start succeed, the daemon is gone.
            print(f"Starting {name}.")
            return
        running.append(name)
        if name == "mountd":
            load_exports(config, state)
        print(f"Starting {name}.")
        return
    if verb == "onestop":
        if name not in running:
            out(code=1, err=f"{name} not running? (check /var/run/{name}.pid).")
        running.remove(name)
        if name == "hastd":
            hast_stopped(config, state)
        if name == "mountd":
            # The stand-in ties the exports to mountd: the runbooks never
            # serve with mountd stopped.
            state.pop("mountd", None)
        print(f"Stopping {name}.")
        return
    if verb == "onereload":
        if name not in running:
            out(code=1, err=f"{name} not running? (check /var/run/{name}.pid).")
        state["reloads"] = state.get("reloads", 0) + 1
        if name == "mountd":
            # rc.d/mountd reload: SIGHUP, mountd re-reads the exports.
            load_exports(config, state)
        return
    out(code=1, err=f"{name}: unknown directive '{verb}'.")


def load_exports(config, state):
    """mountd (re)reads the exports file; what it drops goes to syslog."""
    if not config.get("exports"):
        return
    loaded = mountd_load(config["exports"])
    state["mountd"] = loaded
    for message in loaded["log"]:
        state.setdefault("syslog", []).append({"daemon": "mountd", "message": message, "t": time.time()})


def vis_exported(path):
    """strsnvis(3) as showmount -E calls it (VIS_GLOB | VIS_NL, extra
    `"'$`; lib/libc/gen/vis.c do_svis without VIS_CSTYLE/VIS_OCTAL)."""
    encoded = []
    for byte in path.encode():
        low = byte & 0x7F
        control = (low < 0x20 and low != 0x09) or low == 0x7F
        caret = "?" if low == 0x7F else chr(low + 0x40)
        if byte == 0x5C:
            encoded.append("\\\\")
        elif chr(byte) in "*?[#\"'$\n":
            encoded.append("\\%03o" % byte)
        elif byte & 0x80:
            encoded.append(("\\M^" + caret) if control else ("\\M-" + chr(low)))
        elif control:
            encoded.append("\\^" + caret)
        else:
            encoded.append(chr(byte))
    return "".join(encoded)


def tool_showmount(config, state, args):
    """usr.bin/showmount/showmount.c: getopt "adEe13"; -E (parsable
    exports) may not be combined with -e, -a or -d. The MOUNT protocol's
    EXPORT call goes through rpcbind to mountd (tcp_callrpc, clnt_create):
    without rpcbind the portmapper fails, without mountd the program is not
    registered; either way clnt_perrno's message, then errx(1, "can't do
    exports rpc"). -E prints each exported directory on a line of its own,
    vis-encoded, in the order xdr_exportslist builds (the reverse of
    mountd's)."""
    flags = [a for a in args if a.startswith("-")]
    hosts = [a for a in args if not a.startswith("-")]
    letters = "".join(f[1:] for f in flags)
    if any(c not in "adEe13" for c in letters) or len(hosts) > 1:
        out(code=1, err="usage: showmount [-a | -d] [-e3] [host]")
    if "E" in letters and "e" in letters:
        out(code=1, err="showmount: -E cannot be used with -e")
    if "E" in letters and ("a" in letters or "d" in letters):
        out(code=1, err="showmount: -E cannot be used with -a or -d")
    if "E" not in letters and "e" not in letters:
        out(code=1, err="usage: showmount [-a | -d] [-e3] [host] (the stand-in models -E and -e only)")
    if hosts and hosts[0] not in ("localhost", "127.0.0.1", "::1"):
        # Another host's mountd is not this node's state: the stand-in
        # does not answer for it rather than answer wrongly.
        out(code=1, err=f"RPC: Unknown host\nshowmount: can't do exports rpc (the stand-in asks this node's mountd only, not {hosts[0]})")
    running = state.get("services", [])
    if "rpcbind" not in running:
        out(code=1, err="RPC: Port mapper failure - RPC: Unable to receive\nshowmount: can't do exports rpc")
    if "mountd" not in running or state.get("mountd") is None:
        out(code=1, err="RPC: Program not registered\nshowmount: can't do exports rpc")
    exported = [d for e in state["mountd"].get("exports", []) for d in e["dirs"]]
    exported.reverse()
    if "E" in letters:
        out("\n".join(vis_exported(d) for d in exported))
    host = hosts[0] if hosts else "localhost"
    lines = [f"Exports list on {host}:"]
    for e in reversed(state["mountd"].get("exports", [])):
        clients = e["clients"]
        who = "Everyone" if clients.get("all") else (clients.get("network") or " ".join(clients.get("hosts", [])))
        for d in reversed(e["dirs"]):
            lines.append(f"{d:<34} {who} ")
    out("\n".join(lines))


def tool_sockstat(config, state, args):
    # usr.bin/sockstat/sockstat.c main: -4 and -6 select the families,
    # "if (!opt_4 && !opt_6) opt_4 = opt_6 = 1;" (neither: both). The
    # argument of -p is a port list, not flags.
    flags = "".join(a[1:] for i, a in enumerate(args)
                    if a.startswith("-") and not (i > 0 and args[i - 1] == "-p"))
    want4 = "4" in flags or "6" not in flags
    want6 = "6" in flags or "4" not in flags
    lines = ["USER     COMMAND    PID   FD PROTO  LOCAL ADDRESS         FOREIGN ADDRESS"]
    if "nfsd" in state.get("services", []) and "2049" in args:
        # usr.sbin/nfsd/nfsd.c main: the master nfsd binds its TCP socket
        # for AF_INET and, when the kernel has INET6 (ip6flag: an AF_INET6
        # socket and the tcp6/udp6 netconfig entries exist), for AF_INET6
        # too; both are wildcard binds, printed as "*" (sockstat.c
        # formataddr).
        if want4:
            lines.append("root     nfsd       1004  5  tcp4   *:2049                *:*")
        if want6:
            lines.append("root     nfsd       1004  6  tcp6   *:2049                *:*")
    out("\n".join(lines))


# ---- storage ------------------------------------------------------------------


# sbin/hastctl/hastctl.c main: every command but create and dump goes to
# hastd over its control socket (uds:///var/run/hastctl, hast.conf(5)
# `control`); when nothing listens there proto_connect fails and
# pjdlog_exit(EX_OSERR, ...) prints "[ERROR] Unable to connect to hastd via
# ...: <strerror>." (lib/libpjdlog/pjdlog.c: level prefix, errno text) and
# exits 71. hastd unlinks its socket on a clean exit (proto_uds.c
# uds_close), hence ENOENT.
HASTCTL_NO_HASTD = ("[ERROR] Unable to connect to hastd via uds:///var/run/hastctl: "
                    "No such file or directory.")
EX_OSERR = 71
# sbin/hastd/primary.c hastd_primary: `role primary` returns once hastd has
# forked the resource's worker; the worker then opens the local provider,
# reads its metadata (init_local) and only then creates /dev/hast/RES
# (init_ggate). So the device shows up a moment after hastctl returns, not
# with it: seconds on a real node (this delay times "time_scale").
HAST_DEVICE_DELAY = 0.5


def hast_device(config, resource):
    return os.path.join(config.get("hast_dev_dir", "/nonexistent"), resource)


def create_hast_device_later(config, resource):
    """Creates /dev/hast/RESOURCE after HAST_DEVICE_DELAY (times
    "time_scale") from a detached process, if the resource is still
    primary and hastd still runs then: the worker's init_ggate."""
    delay = HAST_DEVICE_DELAY * float(config.get("time_scale", 1.0))
    if os.fork() != 0:
        return
    # First child: a new session, out of the caller's process group (a
    # step's timeout kills that group; a hastd worker is not in it), then
    # a grandchild that owns nothing of the caller's (its pipes: the
    # caller waits for their end).
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1024)
        time.sleep(delay)
        with Locked(config["state"] + ".lock"):
            state = read_json(config["state"], {})
            if (state.get("hast", {}).get(resource) == "primary"
                    and "hastd" in state.get("services", [])):
                device = hast_device(config, resource)
                os.makedirs(os.path.dirname(device), exist_ok=True)
                open(device, "a").close()
    except BaseException:
        pass
    os._exit(0)


def hast_stopped(config, state):
    """hastd stopped (sbin/hastd/hastd.c: its workers go with it and each
    primary worker's ggate device with them): after a restart every
    resource is in role init again."""
    for resource in state.get("hast", {}):
        state["hast"][resource] = "init"
        device = hast_device(config, resource)
        if os.path.exists(device):
            os.unlink(device)


def tool_hastctl(config, state, args):
    known = (len(args) == 3 and args[0] == "role" and args[1] in ("primary", "secondary", "init")) \
        or args[:1] == ["status"]
    if not known:
        out(code=64, err="usage: hastctl role <init | primary | secondary> <name>")
    if "hastd" not in state.get("services", []):
        out(code=EX_OSERR, err=HASTCTL_NO_HASTD)
    if args[0] == "role":
        role, resource = args[1], args[2]
        before = state.setdefault("hast", {}).get(resource)
        state["hast"][resource] = role
        device = hast_device(config, resource)
        if role == "primary":
            if before != "primary":
                create_hast_device_later(config, resource)
        elif os.path.exists(device):
            os.unlink(device)
        return
    for resource, role in state.get("hast", {}).items():
        print(f"{resource}:\n  role: {role}")
        # A resource with a worker (primary or secondary) reports its
        # replication: "complete" while both connections to the peer are
        # up, "degraded" otherwise (sbin/hastd/control.c ctrl_thread,
        # printed by sbin/hastctl/hastctl.c control_status).
        if role in ("primary", "secondary"):
            print(f"  status: {hast_status(config, resource, role)}")
    return


def hast_status(config, resource, role):
    """The peer is the node (in the cluster registry) whose hastd runs
    with the other role of `resource`; without a registry there is none."""
    wanted = "secondary" if role == "primary" else "primary"
    for node in read_json(config["cluster"], []) if config.get("cluster") else []:
        if node["state"] == config["state"]:
            continue
        peer = read_json(node["state"], {})
        if "hastd" in peer.get("services", []) and peer.get("hast", {}).get(resource) == wanted:
            return "complete"
    return "degraded"


# zpool follows OpenZFS 2.2 (the rules below name the file each comes
# from; 2.3 and later differ where noted). A pool on the shared disks is
# a record in state["pools"], keyed by name; a name without a record is
# not on the disks. A test writes the record:
#   {"multihost": "off",      # the pool property (zpoolprops.7: default off)
#    "state": "exported",     # the labels' pool state: "active" from a
#                             # read-write import until its export (a
#                             # crashed importer leaves it "active")
#    "hostid": "0x2a", "hostname": "node3",  # the labels: who imported it
#                             # read-write last
#    "writing": false,        # that other node still has it imported and
#                             # writes (its MMP uberblocks, with multihost=on)
# and the stand-in adds what this node did: "imported", "readonly",
# "cachefile" ("none", or "" for /etc/zfs/zpool.cache), "mounted" (no -N),
# "two_writers" (imported read-write while another node still writes: the
# corruption multihost=on exists to prevent). This node's hostid is
# state["hostid"] (default: one derived from the node's name; "0x0" is a
# hostid never set). "mountpoint" (optional) is where the pool's datasets
# mount when imported without -N: an export is refused while they are
# busy (see mount_busy). Not modelled: the activity check's 20-25 s wait.


def zpool_hostid(config, state):
    return int(state.get("hostid", "0x%08x" % (zlib.crc32(config["node"].encode()) or 1)), 16)


def zpool_no_such_pool(pool):
    # lib/libzfs/libzfs_pool.c zpool_open_canfail: not imported here.
    out(code=1, err=f"cannot open '{pool}': no such pool")


def zpool_activity_check_required(record, hostid):
    """module/zfs/spa.c spa_activity_check_required (2.2): only with
    multihost=on, and skipped when the labels carry this node's own hostid
    (so two nodes with one hostid defeat it; 2.3+ still checks an active
    pool then) or the pool was cleanly exported (2.3+: checked, but an
    exported pool shows no activity either)."""
    return (record.get("multihost", "off") == "on"
            and int(record.get("hostid", "0x0"), 16) != hostid
            and record.get("state", "exported") == "active")


def zpool_import(config, state, args):
    flags, props, rest = set(), {}, list(args)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "-o" and rest and "=" in rest[0]:
            name, _, value = rest.pop(0).partition("=")
            props[name] = value
        elif flag == "-o":
            out(code=2, err="standin: zpool import -o MNTOPTS is not modelled")
        elif flag in ("-f", "-N"):
            flags.add(flag)
        else:
            out(code=2, err=f"invalid option '{flag.lstrip('-')}'\nusage:\n\timport [-options] <pool | id> [newpool]")
    if len(rest) != 1:
        out(code=2, err="standin: zpool import without exactly one pool is not modelled")
    unmodelled = set(props) - {"cachefile", "readonly"}
    if unmodelled or props.get("readonly", "off") not in ("on", "off"):
        out(code=2, err=f"standin: zpool import -o {props} is not modelled")
    pool = rest[0]
    pools = state.setdefault("pools", {})
    record = pools.get(pool)
    if record is not None and record.get("imported"):
        # cmd/zpool/zpool_main.c zpool_do_import: the search skips pools
        # active on this system.
        out(code=1, err=f"cannot import '{pool}': a pool with that name is already created/imported,\n"
                        "and no additional pools with that name were found")
    if record is None:
        out(code=1, err=f"cannot import '{pool}': no such pool available")
    hostid = zpool_hostid(config, state)
    other = record.get("hostname", "<unknown>")
    other_hostid = int(record.get("hostid", "0x0"), 16)
    # spa.c spa_ld_select_uberblock, when the activity check is required:
    # no hostid here is MMP_STATE_NO_HOSTID, another node's MMP writes
    # seen during the check MMP_STATE_ACTIVE.
    mmp_state = None
    if zpool_activity_check_required(record, hostid):
        if hostid == 0:
            mmp_state = "no_hostid"
        elif record.get("writing", False):
            mmp_state = "active"
    if "-f" not in flags:
        # zpool_main.c zfs_force_import_required and do_import: without
        # -f (ZFS_IMPORT_ANY_HOST), a pool the labels say is active under
        # another hostid, or whose activity check did not pass, is refused.
        if mmp_state == "active":
            out(code=1, err=f"cannot import '{pool}': pool is imported on {other} (hostid: 0x{other_hostid:x})\n"
                            "Export the pool on the other system, then run 'zpool import'.")
        if mmp_state == "no_hostid":
            out(code=1, err=f"Cannot import '{pool}': pool has the multihost property on and the\n"
                            "system's hostid is not set. Set a unique hostid with the zgenhostid(8) command.")
        if record.get("state", "exported") != "exported" and other_hostid != hostid:
            out(code=1, err=f"cannot import '{pool}': pool was previously in use from another system.\n"
                            f"Last accessed by {other} (hostid={other_hostid:x}) at {time.ctime()}\n"
                            "The pool can be imported, use 'zpool import -f' to import the pool.")
    # With -f the kernel still refuses (only ZFS_IMPORT_SKIP_MMP, zdb's,
    # skips the activity check): EREMOTEIO, worded by
    # lib/libzfs/libzfs_pool.c zpool_import_props. spa.c spa_load_impl
    # refuses multihost=on without a hostid even when no check was needed.
    if mmp_state == "no_hostid" or (record.get("multihost", "off") == "on" and hostid == 0):
        out(code=1, err=f"cannot import '{pool}': pool has the multihost property on and the\n"
                        "system's hostid is not set. Set a unique system hostid with the zgenhostid(8) command.")
    if mmp_state == "active":
        out(code=1, err=f"cannot import '{pool}': pool is imported on host '{other}' (hostid={other_hostid:x}).\n"
                        "Export the pool on the other system, then run 'zpool import'.")
    readonly = props.get("readonly", "off")
    record.update({
        "imported": True,
        "readonly": readonly,
        "cachefile": props.get("cachefile", ""),
        "mounted": "-N" not in flags,
    })
    if readonly == "off":
        # spa.c spa_load_impl: only a writeable import claims the ZIL,
        # syncs and rewrites the labels (this node's hostid, state active).
        if record.get("writing", False):
            record["two_writers"] = True
        record.update({"state": "active", "hostid": "0x%x" % hostid, "hostname": config["node"]})


def tool_zpool(config, state, args):
    pools = state.setdefault("pools", {})
    if args[:1] == ["list"]:
        if args[1:4] != ["-H", "-o", "name"] or len(args) != 5:
            out(code=2, err="standin: only zpool list -H -o name POOL is modelled")
        pool = args[-1]
        if not pools.get(pool, {}).get("imported"):
            zpool_no_such_pool(pool)
        out(pool)
    if args[:1] == ["get"]:
        if args[1:4] != ["-H", "-o", "value"] or len(args) != 6:
            out(code=2, err="standin: only zpool get -H -o value PROPERTY POOL is modelled")
        prop, pool = args[4], args[5]
        values = {"multihost": "off", "readonly": "off", "name": pool}
        if prop not in values and prop != "cachefile":
            # lib/libzfs/libzfs_util.c zprop_get_list; zpool_do_get: usage.
            out(code=2, err=f"bad property list: invalid property '{prop}'")
        record = pools.get(pool, {})
        if not record.get("imported"):
            zpool_no_such_pool(pool)
        if prop == "cachefile":
            # An unset cachefile (the default one) prints as "-".
            out(record.get("cachefile") or "-")
        out(record.get(prop, values[prop]))
    if args[:1] == ["import"]:
        zpool_import(config, state, args[1:])
        return
    if args[:1] == ["export"] and len(args) == 2:
        pool = args[-1]
        record = pools.get(pool, {})
        if not record.get("imported"):
            zpool_no_such_pool(pool)
        mountpoint = record.get("mountpoint")
        if record.get("mounted") and mountpoint:
            # zpool_main.c zpool_do_export: zpool_disable_datasets first
            # unmounts every dataset; lib/libzfs/libzfs_mount.c unmount_one
            # turns unmount(2)'s EBUSY into EZFS_BUSY ("pool or dataset is
            # busy", libzfs_util.c) and the pool stays imported.
            as_mount = {"target": mountpoint, "type": "zfs"}
            if mount_busy(config, state, as_mount, forced=False):
                out(code=1, err=f"cannot unmount '{mountpoint}': pool or dataset is busy")
        record.update({"imported": False, "mounted": False})
        if record.get("readonly") == "off":
            # spa.c spa_export_common: the labels say exported (a
            # read-only pool's labels are left as they were).
            record["state"] = "exported"
        return
    out(code=2, err="usage: zpool command args ...")


# ---- CBSD ----------------------------------------------------------------------


def cbsd_args(args):
    values = {}
    for a in args[1:]:
        key, sep, value = a.partition("=")
        if sep:
            values[key] = value
    return values


def cbsd_err(message):
    """CBSD's `err 1 MSG` (subr/nc.subr): the message on standard output,
    exit 1. `log_err` is the same plus a syslog line."""
    out(message, code=1)


def cbsd_nodename(config):
    """CBSD's nodename: cbsd.conf reads it from ${workdir}/nodename with
    `awk '{printf $1}'` (the first word of each line, run together); the
    stand-in's node name when the file is missing."""
    try:
        with open(os.path.join(config["workdir"], "nodename")) as f:
            return "".join(line.split()[0] for line in f if line.split())
    except FileNotFoundError:
        return config["node"]


# CBSD ignores a foreign lock whose mtime is more than 30 whole minutes old
# (sudoexec/jstart: difftime=$(( (cur_time - st_mtime) / 60 )); -gt 30).
LOCK_STALE_MINUTES = 30


def jstart_lock_check(config, name, lock):
    """sudoexec/jstart's "Check for shared lock": a lock naming this node
    (or empty) is its own stale lock and removed; a foreign one older than
    30 minutes is removed with a notice; a fresh foreign one refuses the
    start (log_err 1). bstart has no such check."""
    if not os.path.isfile(lock):
        return
    with open(lock) as f:
        masterhost = f.read().rstrip("\n")  # $( cat lock ) strips newlines
    nodename = cbsd_nodename(config)
    if masterhost == nodename or not masterhost:
        print(f"Remove my stale lock file: {lock}")
        os.unlink(lock)
        return
    difftime = int(time.time() - os.stat(lock).st_mtime) // 60
    if difftime > LOCK_STALE_MINUTES:
        print(f"Jail {name} locked by {masterhost} node")
        print(f"But lock age is too old: {difftime} min. Removing!!!")
        os.unlink(lock)
        return
    print(f"Jail {name} locked by {masterhost} node, lock age: {difftime} min.")
    cbsd_err(f"You may remove the lockfile if you believe that jail is not running on this node: rm -f {lock}")


def tool_cbsd(config, state, args):
    if not args:
        out(code=1, err="cbsd: no command")
    command = args[0]
    values = cbsd_args(args)
    if os.getcwd() != "/":
        out(code=3, err="cbsd: run from / (a CBSDfile here would change the target)")
    if os.environ.get("NOINTER") != "1" or os.environ.get("NOCOLOR") != "1":
        out(code=3, err="cbsd: NOINTER=1 NOCOLOR=1 expected")
    if command in ("jorder", "border"):
        # The registered jails (jorder) or bhyve VMs (border) of the local
        # database, names separated by spaces, like CBSD's.
        wanted = "bhyve" if command == "border" else "jail"
        names = sorted(n for n, k in state.get("registered", {}).items() if k == wanted)
        out(" ".join(names))
    name = values.get("jname")
    if not name:
        out(code=3, err=f"cbsd {command}: no jname= given: would open the interactive picker")
    registered = state.setdefault("registered", {})
    # For a jail: its jid (jls). For a VM: whether /dev/vmm/J exists, which
    # is all subr/rcconf.subr init_rcconf looks at (jid is then the one in
    # the local database, 1 if that is 0).
    running = state.setdefault("running", {})
    workdir = config["workdir"]
    system = os.path.join(workdir, "jails-system", name)
    lock = os.path.join(system, "locked")
    # Everything but a jail's jstatus reads or writes jails-system/J (hooks,
    # the lock, a VM's local.sqlite: subr/rcconf.subr init_bhyve_rcconf); a
    # jail's jstatus reads only the local database and jls (jailctl/jstatus,
    # rcconf.subr init_rcconf). On a gone server's mount that hangs.
    if command != "jstatus" or registered.get(name) == "bhyve":
        hang_if_gone(config, state, "cbsd", system)
    if registered.get(name) == "bhyve" and command in ("jstatus", "junregister", "bstart", "bstop"):
        # subr/rcconf.subr: init_rcconf ends in init_bhyve_rcconf, which
        # reads the VM's settings from jails-system/J/local.sqlite and
        # `err 1`s without them: before the shared dirs are mounted (or
        # once they are gone) every command that loads a registered VM
        # prints this and exits 1, jstatus included.
        sqlite = os.path.join(system, "local.sqlite")
        if not os.path.isfile(sqlite):
            cbsd_err(f"Unable to fetch vm data from: {sqlite}")
    if command == "jstatus":
        # jailctl/jstatus: the jid on stdout and exit 1 when registered,
        # nothing and exit 0 when not.
        if name in registered:
            out(str(running.get(name, 0)), code=1)
        out(code=0)
    if command == "jset":
        # jailctl/jset: `cbsdsqlrw local UPDATE jails SET k="v"`: the local
        # database only, never the rc.conf copy in jails-system/J.
        if name not in registered:
            cbsd_err(f"No such jail: {name}")
        settings = state.setdefault("settings", {})
        text = settings.get(name, "")
        for key, value in values.items():
            if key != "jname":
                text += f'{key}="{value}"\n'
        settings[name] = text
        return
    if command == "jregister":
        if name in registered:
            out(code=1, err=f"jregister: {name} already exist")
        rcconf = os.path.join(workdir, "jails-rcconf", f"rc.conf_{name}")
        rcfile = values.get("rcfile", rcconf)
        if not os.path.isfile(rcfile):
            # sudoexec/jregister
            cbsd_err(f"no rcconf {rcfile} file for jail: {name}")
        with open(rcfile) as f:
            text = f.read()
        kind = "bhyve" if 'emulator="bhyve"' in text else "jail"
        os.makedirs(system, exist_ok=True)
        # sudoexec/jregister: `${MV_CMD} ${JAILRCCONF} ${jailsysdir}/${jname}`
        # whichever file it read (rcfile= included).
        moved = os.path.join(system, os.path.basename(rcfile))
        if os.path.abspath(rcfile) != os.path.abspath(moved):
            os.replace(rcfile, moved)
        registered[name] = kind
        settings = state.setdefault("settings", {})
        settings[name] = text
        print(f"{name}: registered")
        return
    if command == "junregister":
        # sudoexec/junregister
        if name not in registered:
            if os.path.isfile(os.path.join(workdir, "jails-rcconf", f"rc.conf_{name}")):
                cbsd_err(f"Already unregistered: {name}")
            cbsd_err(f"No such jail: {name}")
        if name in running:
            cbsd_err(f"Jail is active. Please stop them first: {name}")
        kind = registered.pop(name)
        # `jmkrcconf jname=J > ${rcfile:-${jailrcconfdir}/rc.conf_J}`: the
        # settings as the local database holds them.
        rcfile = values.get("rcfile", os.path.join(workdir, "jails-rcconf", f"rc.conf_{name}"))
        os.makedirs(os.path.dirname(rcfile), exist_ok=True)
        text = state.get("settings", {}).pop(name, None)
        if text is None:
            text = f'jname="{name}"\n' + ('emulator="bhyve"\n' if kind == "bhyve" else "")
        with open(rcfile, "w") as f:
            f.write(text)
        if os.path.exists(lock):
            os.unlink(lock)
        return
    if command in ("jstart", "bstart"):
        if name not in registered:
            cbsd_err(f"No such jail: {name}" if command == "jstart" else f"No such domain: {name}")
        wanted = "bhyve" if command == "bstart" else "jail"
        if registered[name] != wanted:
            out(code=1, err=f"{command}: {name} is a {registered[name]}")
        if name in running:
            # sudoexec/jstart, sudoexec/bstart: `[ ${jid} -ne 0 ] && err 1`
            cbsd_err(f"Jail {name} already running, jid: {running[name]}")
        if not os.path.isdir(system):
            # Its jails-system/ is not there: the shared dirs are not mounted.
            out(code=1, err=f"{command}: {name}: no such directory: {system}")
        if command == "jstart":
            jstart_lock_check(config, name, lock)
        running[name] = 10 + len(running)
        if command == "jstart":
            # sudoexec/jstart: `echo "${nodename}" > ${jaillock}` once the
            # jail runs. sudoexec/bstart writes no lock at all.
            with open(lock, "w") as f:
                f.write(cbsd_nodename(config) + "\n")
        append_line(config["cluster_log"], {"node": config["node"], "env": name, "event": "start", "t": time.time()})
        print(f"{name}: started")
        return
    if command in ("jstop", "bstop"):
        if name not in registered:
            cbsd_err(f"No such jail: {name}" if command == "jstop" else f"No such domain: {name}")
        if command == "jstop" and name not in running:
            # sudoexec/jstop: `[ ${jid} -eq 0 ] && err 1 "Not Running: J"`.
            # sudoexec/bstop has no such check: it kills nothing, runs
            # `bhyvectl --destroy` and exits 0.
            cbsd_err(f"Not Running: {name}")
        # Accepted like CBSD: jstop's fast=1 (`jail -rR`, no exec.stop;
        # sudoexec/jstop) and bstop's noacpi=1 (kill -9 at once, then
        # `bhyvectl --destroy`; sudoexec/bstop). Both then kill -9 what is
        # left, so the stand-in stops the same way in every form.
        if name in running:
            del running[name]
            if os.path.exists(lock):
                # sudoexec/jstop removes the lock; bstop never had one.
                os.unlink(lock)
            append_line(config["cluster_log"], {"node": config["node"], "env": name, "event": "stop", "t": time.time()})
        print(f"{name}: stopped")
        return
    out(code=1, err=f"cbsd: unknown command {command}")


def tool_lab_kill(config, state, args):
    """lab-kill NAME: not a FreeBSD tool. Daemon NAME dies behind rc.subr's
    back (a crash, an OOM kill): `service NAME onestatus` then says it is
    not running (rc.subr check_pidfile finds no such process for the stale
    pidfile) and `onestart` starts it again. What goes with the process
    goes as on a stop: hastd's workers and each primary's ggate device
    (hast_stopped, sbin/hastd/hastd.c). mountd is not modelled: the
    stand-in ties the kernel's export lists to it."""
    if len(args) != 1 or args[0] == "mountd":
        out(code=64, err="usage: lab-kill NAME (not mountd)")
    name = args[0]
    running = state.setdefault("services", [])
    if name not in running:
        out(code=1, err=f"lab-kill: {name} is not running")
    running.remove(name)
    if name == "hastd":
        hast_stopped(config, state)


def tool_lab_reboot(config, state, args):
    """Not a FreeBSD tool: what a reboot (the lab's watchdog reset) clears.
    Every mount goes (mounts do not survive a reboot; the agent's NFS mounts
    are kept out of fstab), the exports mountd loaded go with the kernel's
    export lists, every service the agent started stops (they are
    disabled in rc.conf: rc(8) starts none of them at boot), every HAST
    resource comes back in role init (hastd's start-up role, sbin/hastd/
    hastd.c: a resource is primary only after `hastctl role primary`), no
    pool is imported (imported with cachefile=none: libexec/rc/rc.d/zpool
    imports only pools listed in /etc/zfs/zpool.cache), every jail and VM
    is gone (managed environments have astart=0). CBSD's registrations are
    in its local database and stay."""
    now = time.time()
    thaw_all(config, state)
    for mount in reversed(state.get("mounts", [])):
        if mount["type"] in ("nfs", "nullfs") or mount.get("linked"):
            undo_mount_link(mount["target"])
    state["mounts"] = []
    state["services"] = []
    state.pop("mountd", None)
    for resource in state.get("hast", {}):
        state["hast"][resource] = "init"
        device = os.path.join(config.get("hast_dev_dir", "/nonexistent"), resource)
        if os.path.exists(device):
            os.unlink(device)
    for record in state.get("pools", {}).values():
        if isinstance(record, dict):
            for key in ("imported", "readonly"):
                record.pop(key, None)
    for name in sorted(state.get("running", {})):
        append_line(config["cluster_log"], {"node": config["node"], "env": name, "event": "stop", "t": now})
    state["running"] = {}


# ---- read-only tools (doctor) ------------------------------------------------


# libexec/rc/rc.conf (/etc/defaults/rc.conf) of FreeBSD 14, for the
# variables doctor reads; cbsd_workdir is set by CBSD's port, not here.
RC_DEFAULTS = {
    "nfs_server_enable": "NO",
    "mountd_enable": "NO",
    "mountd_flags": "-r -S",
    "rpc_lockd_enable": "NO",
    "rpc_statd_enable": "NO",
    "nfsv4_server_enable": "NO",
    "nfsv4_server_only": "NO",
    "nfsuserd_enable": "NO",
    "watchdogd_enable": "NO",
    "zfs_enable": "NO",
}


def print_value(value):
    """Prints a value as the tools do: one line, an empty one included."""
    sys.stdout.write(f"{value}\n")
    sys.stdout.flush()
    sys.exit(0)


def tool_sysrc(config, state, args):
    # usr.sbin/sysrc/sysrc: -n prints the value alone; a variable set in
    # neither the rc.conf files nor the defaults is an error, exit 1.
    if len(args) != 2 or args[0] != "-n":
        out(code=2, err="standin: only sysrc -n NAME is modelled")
    name = args[1]
    values = dict(RC_DEFAULTS)
    values.update(state.get("rc_conf", {}))
    if values.get(name) is None:
        out(code=1, err=f"sysrc: unknown variable '{name}'")
    print_value(values[name])


def tool_sysctl(config, state, args):
    # sbin/sysctl/sysctl.c: -n prints the value alone; an unknown name is
    # "unknown oid", exit 1.
    if len(args) != 2 or args[0] != "-n":
        out(code=2, err="standin: only sysctl -n NAME is modelled")
    name = args[1]
    if name == "kern.hostid":
        # An unsigned long, printed in decimal.
        print_value(zpool_hostid(config, state))
    values = state.get("sysctl", {})
    if name not in values:
        out(code=1, err=f"sysctl: unknown oid '{name}'")
    print_value(values[name])


# A few options of a current pkg (libpkg/pkg_config.c). Since pkg 1.11
# there is no NFS_WITH_PROPER_LOCKING: an older pkg is modelled by setting
# it in state["pkg_config"].
PKG_DEFAULTS = {
    "PKG_DBDIR": "/var/db/pkg",
    "ASSUME_ALWAYS_YES": "no",
}


def tool_pkg(config, state, args):
    # pkg src/config.c exec_config: the key in upper case; an unknown one
    # is a warnx and EX_SOFTWARE (70); booleans print yes or no.
    if len(args) != 2 or args[0] != "config":
        out(code=64, err="Usage: pkg config <configname>")
    key = args[1].upper()
    values = dict(PKG_DEFAULTS)
    values.update(state.get("pkg_config", {}))
    if key not in values:
        out(code=70, err=f"pkg: No such configuration options: {key}")
    print_value(values[key])


def tool_kldstat(config, state, args):
    out(code=1)


def tool_fsck(config, state, args):
    """fsck -p -y -t ufs DEVICE. sbin/fsck/fsck.c runs fsck_ufs and exits
    with its status. In preen mode (-p) sbin/fsck_ffs/fsutil.c pfatal
    stops at the first inconsistency preening may not repair, -y or not:
    it prints "DEVICE: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY." on
    standard output and exits EEXIT (8, sbin/fsck_ffs/fsck.h); only a
    check without -p repairs it. A test makes a device's file system so
    damaged with state["fsck_unexpected"] = [DEVICE, ...]; a fsck without
    -p repairs it (and removes it from the list). fsck_ffs main.c
    setup: a device that cannot be opened is also exit 8."""
    paths = [a for a in args if not a.startswith("-") and a != "ufs"]
    flags = [a for a in args if a.startswith("-")]
    if len(paths) != 1:
        out(code=2, err="standin: only fsck [-p] [-y] -t ufs DEVICE is modelled")
    device = paths[0]
    if not os.path.exists(device):
        out(f"Can't open {device}: No such file or directory", code=8)
    damaged = state.get("fsck_unexpected", [])
    if device in damaged:
        if "-p" in flags:
            # pass1.c checkinode: pfatal("UNKNOWN FILE TYPE I=%lu").
            out(f"{device}: UNKNOWN FILE TYPE I=4242\n"
                f"{device}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.", code=8)
        damaged.remove(device)
        print(f"** {device}\n***** FILE SYSTEM WAS MODIFIED *****")
    return


def tool_ifconfig(config, state, args):
    return


TOOLS = {
    "mount": tool_mount,
    "umount": tool_umount,
    "service": tool_service,
    "sockstat": tool_sockstat,
    "showmount": tool_showmount,
    "hastctl": tool_hastctl,
    "zpool": tool_zpool,
    "cbsd": tool_cbsd,
    "kldstat": tool_kldstat,
    "fsck": tool_fsck,
    "ifconfig": tool_ifconfig,
    "sysrc": tool_sysrc,
    "sysctl": tool_sysctl,
    "pkg": tool_pkg,
    "lab-reboot": tool_lab_reboot,
    "lab-nfs-access": tool_lab_nfs_access,
    "lab-kill": tool_lab_kill,
    "df": tool_df,
}


def main():
    config = load_config()
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    # lab-nfs-access is the kernel's side of the agent's fs-probe, not a
    # call of the agent's: the call log shows what the agent ran.
    if tool != "lab-nfs-access":
        append_line(config["log"], {
            "node": config["node"],
            "tool": tool,
            "argv": [tool] + args,
            "cwd": os.getcwd(),
            "env": {k: os.environ[k] for k in ("NOCOLOR", "NOINTER") if k in os.environ},
            "t": time.time(),
        })
    rule = take_rule(config, [tool] + args)
    if rule is not None:
        if rule.get("action") == "hang":
            time.sleep(3600)
        if rule.get("action") == "delay":
            time.sleep(float(rule.get("seconds", 1)))
            rule = None
    if rule is not None:
        out(code=rule.get("exit", 1), err=rule.get("stderr", f"{tool}: injected failure"))
    handler = TOOLS.get(tool)
    if tool == "mount_nfs":
        mount = mount_nfs_unlocked(config, args)
        handler = lambda config, state, args: record_mount_nfs(state, mount)  # noqa: E731
    if handler is None:
        out(code=127, err=f"standin: unknown tool {tool}")
    state_path = config["state"]
    while True:
        hang = None
        with Locked(state_path + ".lock"):
            state = read_json(state_path, {})
            try:
                handler(config, state, args)
            except SystemExit:
                write_json(state_path, state)
                raise
            except Hang as h:
                hang = h
            write_json(state_path, state)
        if hang is None:
            return
        # Back when the server answers again: the call is retried and
        # gets what the server answers now (a test may have moved the
        # address: "server" in standin.json).
        hang_uninterruptibly(config, hang)
        config = load_config()


# ---- the stand-in server ------------------------------------------------------
#
# Starting Python for every call costs 100-400 ms on a loaded 2-core machine,
# most of a lab failover. `standin.py serve SOCKET` loads this program once
# and forks a child per call of the thin client (lab/src/bin/rcbsd-standin.rs,
# linked under every tool name next to a `standin.sock` that leads to
# SOCKET). The client sends its stdin, stdout and stderr (SCM_RIGHTS) and
# its argv, cwd, umask and environment, then waits for the exit code. The
# child takes on the caller's network and mount namespaces (reachable() and
# source_address() answer as from the caller's node; /sys and its freezer
# are the caller's), its fds, cwd, umask, environment and argv, and runs
# main() unchanged: every byte goes straight to the caller's pipes, as it
# would from a Python started by the caller.
#
# Kill semantics stay the caller's: the process the agent spawned (and
# kills) is the client. When it dies its socket closes and the child exits
# at once (so a killed mount_nfs never mounts later); a hang on a gone
# server freezes the client's pid (CALLER_PID), not the child's, so SIGKILL
# waits in the freezer as before.

CALLER_PID = None  # the client's pid in a served call (see hang_uninterruptibly)

CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1


def enter_namespaces_of(pid):
    """Enters `pid`'s network and mount namespaces where they differ from
    ours (the lab runs each node's agent under `ip netns exec`, which also
    gives it a mount namespace with its own /sys)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for name, flag in (("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS)):
        theirs = f"/proc/{pid}/ns/{name}"
        if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
            continue
        fd = os.open(theirs, os.O_RDONLY)
        try:
            if libc.setns(fd, flag) != 0:
                raise OSError(ctypes.get_errno(), f"setns {theirs}")
        finally:
            os.close(fd)


def read_request(conn):
    """(fields, fds) of a client's request: a 4-byte little-endian length,
    then NUL-terminated fields, with the caller's fds 0, 1, 2 attached."""
    import socket
    import struct

    data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
    while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
        more = conn.recv(65536)
        if not more:
            raise EOFError("short request")
        data += more
    length = struct.unpack("<I", data[:4])[0]
    return data[4:4 + length].split(b"\0")[:-1], fds


def serve_call(conn):
    """Runs one call for the client on `conn` (in a forked child); returns
    the exit code main() gave, as Python's own exit would."""
    import io
    import socket
    import struct
    import threading
    import traceback

    global CALLER_PID
    fields, fds = read_request(conn)
    if len(fds) != 3:
        raise OSError("the client sent no stdin, stdout and stderr")
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    CALLER_PID = struct.unpack("3i", cred)[0]
    cwd, umask, argc = os.fsdecode(fields[0]), int(fields[1]), int(fields[2])
    argv = [os.fsdecode(a) for a in fields[3:3 + argc]]
    env = [os.fsdecode(e) for e in fields[3 + argc:]]
    enter_namespaces_of(CALLER_PID)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # As Python sets them up at start-up for a process of the caller's.
    sys.stdin = io.TextIOWrapper(io.open(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.open(1, "wb", closefd=False), encoding="utf-8",
                                  line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.open(2, "wb", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True)
    os.chdir(cwd)
    os.umask(umask)
    os.environ.clear()
    for entry in env:
        key, sep, value = entry.partition("=")
        if sep and key:
            os.environ[key] = value
    sys.argv = argv

    def caller_gone():
        # The client never writes after its request: EOF means it died
        # (killed by the agent) or gave up.
        try:
            conn.recv(1)
        finally:
            os._exit(1)

    threading.Thread(target=caller_gone, daemon=True).start()
    try:
        main()
        code = 0
    except SystemExit as e:
        # Python's handling of SystemExit at exit.
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            sys.stderr.write(f"{e.code}\n")
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            code = 120  # as Python exits when flushing stdout fails
    conn.sendall(struct.pack("<i", code))
    return code


def serve(path):
    """Answers clients on unix socket `path` until killed."""
    import ctypes
    import signal
    import socket
    # Loaded once here rather than in every child.
    import io  # noqa: F401
    import ipaddress  # noqa: F401
    import struct  # noqa: F401
    import threading  # noqa: F401
    import traceback  # noqa: F401

    libc = ctypes.CDLL(None, use_errno=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under another name, then renamed: a client never finds a
    # socket that does not accept yet.
    tmp = f"{path}.{os.getpid()}.tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    listener.bind(tmp)
    listener.listen(128)
    os.replace(tmp, path)
    while True:
        conn, _ = listener.accept()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # A call still running when the server is stopped (its
                # world is torn down) ends with it.
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                code = serve_call(conn)
            except (EOFError, FileNotFoundError) as error:
                # The caller is gone before its call began: killed by the
                # timeout of the check or step that ran it (its request cut
                # short, or its namespaces gone with it: a zombie keeps its
                # /proc entry but not /proc/PID/ns). Nothing to answer; any
                # other missing file is a stand-in bug and is shown.
                if not (isinstance(error, EOFError) or not os.path.exists(f"/proc/{CALLER_PID}/ns/net")):
                    import traceback

                    traceback.print_exc()
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code & 0xFF)
        conn.close()


def as_tool():
    """`standin.py as TOOL_PATH ARGS...`: the client's fallback when no
    server answers; runs main() as if started as TOOL_PATH."""
    sys.argv = sys.argv[2:]
    main()


if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == "standin.py" and sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        serve(sys.argv[2])
    elif os.path.basename(sys.argv[0]) == "standin.py" and sys.argv[1:2] == ["as"] and len(sys.argv) >= 3:
        as_tool()
    else:
        main()
