//! The daemon side of the control socket.
//!
//! [`bind`] claims the socket path (replacing a stale socket, refusing when
//! another agent answers or when the path is not a socket) and [`serve`]
//! answers newline-delimited JSON requests by forwarding each one to the
//! agent over a channel. A client can send anything: every malformed line
//! gets an error reply and the connection stays usable; nothing a client
//! sends can stop the server.
//!
//! Access is checked twice: by the socket file's mode (0600, or 0660 with
//! the `node.status_group` group) and, on every connection, by the peer's
//! kernel credentials against [`super::access::Policy`] (root: everything, the
//! status group: `status` only), so a mode widened by hand widens nothing.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use super::access::{Denial, Policy, StatusGroup};
use super::peer::{self, Peer};
use super::protocol::{Request, Response};

/// Longest request line accepted; real requests are a few dozen bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// A client must send each line within this time of the previous reply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for the agent before getting an error reply.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// How long a refused client may take to send the request it had queued:
/// reading it before closing lets the client read its refusal instead of
/// seeing a reset (a Unix socket closed with unread data resets its peer).
const REFUSED_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A request for the agent and where to send its answer.
pub type Envelope = (Request, oneshot::Sender<Response>);

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another agent answers on the socket path.
    #[error("another agent is running on {} (it answers on the control socket)", path.display())]
    AlreadyRunning {
        /// The control socket path (`node.control_socket`).
        path: PathBuf,
    },
    /// Something other than a socket sits at the path; it is left alone.
    #[error("{} exists and is not a socket; refusing to replace it (remove it or change node.control_socket)", path.display())]
    NotASocket {
        /// The control socket path (`node.control_socket`).
        path: PathBuf,
    },
    /// `node.status_group` names no group in the group database.
    #[error("node.status_group: there is no group named {group:?} (create it with pw groupadd, or remove status_group to let only root use the control socket)")]
    UnknownGroup {
        /// The group name as configured.
        group: String,
    },
    /// Looking up `node.status_group` failed (getgrnam_r(3)).
    #[error("node.status_group: cannot look up group {group:?}: {source}")]
    GroupLookup {
        /// The group name as configured.
        group: String,
        /// The errno of the lookup.
        #[source]
        source: nix::Error,
    },
    /// A system call on the socket path failed.
    #[error("control socket {}: cannot {action}: {source}", path.display())]
    Io {
        /// The control socket path (`node.control_socket`).
        path: PathBuf,
        /// What was being done, e.g. "remove the stale socket".
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A bound control socket and the access rule it enforces; [`serve`] it.
#[derive(Debug)]
pub struct Listener {
    socket: UnixListener,
    policy: Policy,
}

/// Bind the control socket at `path` for root only (mode 0600): the same
/// as [`bind_with_access`] without a status group.
pub fn bind(path: &Path) -> Result<Listener, ControlError> {
    bind_with_access(path, None)
}

/// Bind the control socket at `path`. Without `status_group` it is mode
/// 0600 and only root may use it; with it, the file belongs to that group
/// with mode 0660 and the group's members may read `status`. Must be
/// called within a tokio runtime (the listener registers with its reactor).
///
/// Group and mode are set between `bind` and `listen`: the file exists
/// with the umask's mode for that moment, but nobody can connect to a
/// socket that is not listening yet, so no client ever gets in through a
/// wider mode.
pub fn bind_with_access(path: &Path, status_group: Option<&str>) -> Result<Listener, ControlError> {
    let policy = Policy {
        status_group: status_group.map(resolve_group).transpose()?,
    };
    let io_error = |action| {
        let path = path.to_path_buf();
        move |source| ControlError::Io {
            path,
            action,
            source,
        }
    };
    claim_path(path)?;
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .map_err(io_error("create a socket"))?;
    let address = socket2::SockAddr::unix(path).map_err(io_error("use the path"))?;
    socket.bind(&address).map_err(io_error("bind"))?;
    match &policy.status_group {
        Some(group) => {
            std::os::unix::fs::chown(path, None, Some(group.gid))
                .map_err(io_error("give the socket to node.status_group"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(io_error("set mode 0660"))?;
        }
        None => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("set mode 0600"))?,
    }
    socket.listen(16).map_err(io_error("listen"))?;
    socket
        .set_nonblocking(true)
        .map_err(io_error("set non-blocking mode"))?;
    let listener: std::os::unix::net::UnixListener = socket.into();
    let socket = UnixListener::from_std(listener).map_err(io_error("register with the runtime"))?;
    Ok(Listener { socket, policy })
}

/// The gid of group `name`, read once at start: a group renamed or
/// removed later does not change who may connect until a restart.
fn resolve_group(name: &str) -> Result<StatusGroup, ControlError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(StatusGroup {
            name: name.to_owned(),
            gid: group.gid.as_raw(),
        }),
        Ok(None) => Err(ControlError::UnknownGroup {
            group: name.to_owned(),
        }),
        Err(source) => Err(ControlError::GroupLookup {
            group: name.to_owned(),
            source,
        }),
    }
}

/// Make `path` free for a new socket: remove a stale socket, refuse a live
/// one or anything that is not a socket.
fn claim_path(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Io {
                path: path.to_path_buf(),
                action: "inspect the existing file",
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(ControlError::AlreadyRunning {
            path: path.to_path_buf(),
        }),
        // Nobody listens: the socket was left by an agent that died.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            remove_socket(path).map_err(|source| ControlError::Io {
                path: path.to_path_buf(),
                action: "remove the stale socket",
                source,
            })
        }
        Err(source) => Err(ControlError::Io {
            path: path.to_path_buf(),
            action: "check whether another agent is running",
            source,
        }),
    }
}

fn remove_socket(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the socket file at exit. Only a socket is removed: if something
/// else has taken the path since, it is left alone.
pub fn remove(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = remove_socket(path);
        }
    }
}

/// Accept connections until `shutdown` becomes true (or its sender is
/// dropped), then close every connection.
pub async fn serve(
    listener: Listener,
    requests: mpsc::Sender<Envelope>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Listener {
        socket: listener,
        policy,
    } = listener;
    let policy = Arc::new(policy);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let next_client = async {
            let slot = slots.clone().acquire_owned().await;
            (slot, listener.accept().await)
        };
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            (slot, accepted) = next_client => match (slot, accepted) {
                (Ok(slot), Ok((stream, _))) => {
                    let requests = requests.clone();
                    let policy = policy.clone();
                    connections.spawn(async move {
                        let _slot = slot;
                        // A failing connection concerns that client only.
                        let _ = serve_connection(stream, &policy, requests).await;
                    });
                }
                // EMFILE and friends: back off instead of spinning.
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn serve_connection(
    stream: UnixStream,
    policy: &Policy,
    requests: mpsc::Sender<Envelope>,
) -> io::Result<()> {
    let peer = match admit(&stream, policy).await {
        Ok(peer) => peer,
        Err(denial) => return refuse(stream, &denial).await,
    };
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = tokio::time::timeout(READ_TIMEOUT, read_line(limited, &mut line)).await;
        let read = match read {
            Ok(result) => result?,
            Err(_) => return Ok(()), // idle client
        };
        if read == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            // The rest of the line is unread, so we cannot find the next
            // request boundary: answer and close.
            let reply = Response::error(format!("request longer than {MAX_LINE} bytes"));
            return write_response(&mut write_half, &reply).await;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = answer(&line, policy, &peer, &requests).await;
        write_response(&mut write_half, &reply).await?;
    }
}

/// The credentials of the client on `stream`, if the policy lets it in.
async fn admit(stream: &UnixStream, policy: &Policy) -> Result<Peer, Denial> {
    let peer = match peer::credentials(stream) {
        Ok(peer) => peer,
        // Credentials we cannot read are nobody's: (uid_t)-1 is no account
        // and no group, so the policy refuses it below.
        Err(_) => Peer {
            uid: u32::MAX,
            gid: u32::MAX,
            groups: Vec::new(),
        },
    };
    let peer = if policy.needs_groups(&peer) {
        // The group database may be NIS or LDAP: never block the runtime
        // that sends the adverts.
        let lookup = peer.clone();
        tokio::task::spawn_blocking(move || peer::with_groups(lookup))
            .await
            .unwrap_or(peer)
    } else {
        peer
    };
    policy.admit(&peer).map(|()| peer).inspect_err(log_denied)
}

/// Answer a client that may not use the socket with one error line, then
/// close.
async fn refuse(stream: UnixStream, denial: &Denial) -> io::Result<()> {
    let (read_half, mut write_half) = stream.into_split();
    write_response(&mut write_half, &Response::error(denial.to_string())).await?;
    let mut request = Vec::new();
    let limited = BufReader::new(read_half.take(MAX_LINE as u64));
    let _ = tokio::time::timeout(REFUSED_DRAIN_TIMEOUT, read_line(limited, &mut request)).await;
    Ok(())
}

/// Every refusal is logged (`control_denied`, in `src/events.rs`).
fn log_denied(denial: &Denial) {
    crate::events::control_denied(denial.uid, denial.gid, &denial.request, &denial.needed);
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    mut reader: R,
    line: &mut Vec<u8>,
) -> io::Result<usize> {
    reader.read_until(b'\n', line).await
}

/// The reply to one request line from `peer`.
async fn answer(
    line: &[u8],
    policy: &Policy,
    peer: &Peer,
    requests: &mpsc::Sender<Envelope>,
) -> Response {
    let request = match parse_request(line) {
        Ok(request) => request,
        Err(problem) => return Response::error(problem.to_string()),
    };
    if let Err(denial) = policy.authorize(peer, &request) {
        log_denied(&denial);
        return Response::error(denial.to_string());
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    if requests.send((request, reply_tx)).await.is_err() {
        return Response::error("the agent is shutting down");
    }
    match tokio::time::timeout(AGENT_TIMEOUT, reply_rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => Response::error("the agent dropped the request"),
        Err(_) => Response::error(format!(
            "the agent did not answer within {}s",
            AGENT_TIMEOUT.as_secs()
        )),
    }
}

/// What every malformed-request reply ends with.
const EXPECTED_REQUEST: &str = "(expected one JSON object per line, e.g. {\"command\":\"status\"}; commands: status, promote, demote, resume, move)";

/// Why a request line is not a request; the message is the reply's error.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON at all.
    #[error("malformed request: {} {}", .0, EXPECTED_REQUEST)]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object (serde would read an array's first element
    /// as the command).
    #[error("malformed request: not a JSON object {}", EXPECTED_REQUEST)]
    NotAnObject,
    /// An object that is no known command or lacks its fields.
    #[error("malformed request: {} {}", .0, EXPECTED_REQUEST)]
    NotARequest(#[source] serde_json::Error),
    /// A known command with a field it does not have.
    #[error("malformed request: unknown field `{}` {}", .field, EXPECTED_REQUEST)]
    UnknownField {
        /// The field's name.
        field: String,
    },
}

/// Parse one request line; the error names the problem for the reply.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(RequestError::NotJson)?;
    // serde reads an internally tagged enum from a JSON array too (the
    // first element as the tag): `["promote"]` would promote. The protocol
    // is one object per line, nothing else (found by the control fuzzer).
    if !value.is_object() {
        return Err(RequestError::NotAnObject);
    }
    let request: Request =
        serde_json::from_value(value.clone()).map_err(RequestError::NotARequest)?;
    // serde ignores `deny_unknown_fields` for the unit variants of an
    // internally tagged enum, so `{"command":"status","force":1}` would pass
    // silently: compare the keys given with the keys the request has.
    if let (serde_json::Value::Object(given), Ok(serde_json::Value::Object(known))) =
        (&value, serde_json::to_value(&request))
    {
        if let Some(unknown) = given.keys().find(|key| !known.contains_key(*key)) {
            return Err(RequestError::UnknownField {
                field: unknown.clone(),
            });
        }
    }
    Ok(request)
}

async fn write_response(
    writer: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(io::Error::other)?;
    bytes.push(b'\n');
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client does not read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// A control socket served by a fake agent that answers every request
    /// with `changed: "<command>"`.
    struct Harness {
        _dir: tempfile::TempDir,
        path: PathBuf,
        shutdown: watch::Sender<bool>,
        server: tokio::task::JoinHandle<()>,
    }

    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = bind(&path).unwrap();
        let (requests, mut inbox) = mpsc::channel::<Envelope>(4);
        tokio::spawn(async move {
            while let Some((request, reply)) = inbox.recv().await {
                let command = serde_json::to_value(request).unwrap()["command"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let _ = reply.send(Response {
                    ok: true,
                    error: None,
                    status: None,
                    changed: Some(command),
                });
            }
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, requests, shutdown_rx));
        Harness {
            _dir: dir,
            path,
            shutdown,
            server,
        }
    }

    struct Client {
        reader: BufReader<tokio::net::unix::OwnedReadHalf>,
        writer: tokio::net::unix::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(path: &Path) -> Client {
            let (read, writer) = UnixStream::connect(path).await.unwrap().into_split();
            Client {
                reader: BufReader::new(read),
                writer,
            }
        }

        async fn send(&mut self, bytes: &[u8]) -> Response {
            self.writer.write_all(bytes).await.unwrap();
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            serde_json::from_str(&line).unwrap()
        }
    }

    #[tokio::test]
    async fn a_request_is_forwarded_and_answered_on_one_line() {
        let harness = start();
        let mut client = Client::connect(&harness.path).await;
        let reply = client.send(b"{\"command\":\"demote\"}\n").await;
        assert!(reply.ok);
        assert_eq!(reply.changed.as_deref(), Some("demote"));
    }

    #[tokio::test]
    async fn malformed_lines_get_error_replies_and_the_connection_stays_usable() {
        let harness = start();
        let mut client = Client::connect(&harness.path).await;
        for (bad, mentions) in [
            (&b"not json\n"[..], "malformed request"),
            (b"{\"command\":\"reboot\"}\n", "reboot"),
            (b"{\"command\":\"status\",\"extra\":1}\n", "extra"),
            (b"{}\n", "command"),
            (b"\xff\xfe\n", "malformed request"),
        ] {
            let reply = client.send(bad).await;
            assert!(!reply.ok, "{:?} accepted", String::from_utf8_lossy(bad));
            let error = reply.error.unwrap();
            assert!(error.contains(mentions), "{error}");
        }
        let reply = client.send(b"{\"command\":\"status\"}\n").await;
        assert_eq!(reply.changed.as_deref(), Some("status"));
    }

    #[tokio::test]
    async fn an_oversize_line_is_refused_and_the_server_keeps_serving() {
        let harness = start();
        let mut client = Client::connect(&harness.path).await;
        let mut huge = vec![b'x'; MAX_LINE + 10];
        huge.push(b'\n');
        let reply = client.send(&huge).await;
        assert!(reply.error.unwrap().contains("longer than"));
        let mut other = Client::connect(&harness.path).await;
        let reply = other.send(b"{\"command\":\"resume\"}\n").await;
        assert_eq!(reply.changed.as_deref(), Some("resume"));
    }

    #[tokio::test]
    async fn the_blocking_client_talks_to_the_server() {
        let harness = start();
        let path = harness.path.clone();
        let reply = tokio::task::spawn_blocking(move || {
            crate::control::client::request(&path, Request::Promote, Duration::from_secs(5))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(reply.changed.as_deref(), Some("promote"));
    }

    #[tokio::test]
    async fn the_socket_is_mode_0600() {
        let harness = start();
        let mode = std::fs::metadata(&harness.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn with_a_status_group_the_socket_is_mode_0660_and_owned_by_that_group() {
        use std::os::unix::fs::MetadataExt;
        // The group of this process always exists and may own our files.
        let gid = nix::unistd::getegid();
        let group = nix::unistd::Group::from_gid(gid).unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let _listener = bind_with_access(&path, Some(&group.name)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid.as_raw());
    }

    #[tokio::test]
    async fn an_unknown_status_group_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let error = bind_with_access(&path, Some("no-such-group-rcbsd")).unwrap_err();
        assert!(matches!(error, ControlError::UnknownGroup { .. }));
        assert!(
            error.to_string().contains("\"no-such-group-rcbsd\""),
            "{error}"
        );
        assert!(!path.exists(), "nothing may be bound for a refused config");
    }

    #[tokio::test]
    async fn shutdown_ends_serve() {
        let harness = start();
        let _idle = Client::connect(&harness.path).await;
        harness.shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), harness.server)
            .await
            .expect("serve did not stop")
            .unwrap();
    }

    #[tokio::test]
    async fn a_live_agent_is_not_replaced() {
        let harness = start();
        let error = bind(&harness.path).unwrap_err();
        assert!(matches!(error, ControlError::AlreadyRunning { .. }));
        assert!(error.to_string().contains("another agent is running on"));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "the stale socket file should remain");
        let listener = bind(&path).unwrap();
        drop(listener);
        remove(&path);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_regular_file_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, "precious").unwrap();
        let error = bind(&path).unwrap_err();
        assert!(matches!(error, ControlError::NotASocket { .. }));
        remove(&path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }
}
