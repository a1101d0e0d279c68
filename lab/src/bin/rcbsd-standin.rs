//! The thin client of the FreeBSD tool stand-ins (`lab/standins/standin.py`),
//! for tests and the lab only: linked under every tool name in a stand-in
//! `tools/` directory, it hands the call to the stand-in server
//! (`standin.py serve`) listening on `tools/standin.sock`, instead of
//! starting a Python interpreter per call (100–400 ms on a loaded 2-core
//! machine; this client and the server's fork take a few).
//!
//! It sends its stdin, stdout and stderr (SCM_RIGHTS) and its argv, cwd,
//! umask and environment; the server's child for the call writes straight
//! to those fds and answers with the exit code, which this process exits
//! with. This process is the one its caller spawned and may kill: the
//! server's child ends when this process's socket closes, and a hang on a
//! gone NFS server freezes this process (see "the stand-in server" in
//! `standin.py`).
//!
//! Without a server (no socket, or nobody accepting) it runs the stand-in
//! itself: `python3 tools/standin.py as TOOL ARGS...`, in this process
//! (exec), as a symlink to `standin.py` would.

use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::sys::stat::{umask, Mode};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(argv0) = args.first() else {
        eprintln!("rcbsd-standin: no argv[0]: run it through a link named after a tool");
        return ExitCode::from(2);
    };
    let tool = tool_path(argv0);
    let dir = tool
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if let Ok(stream) = UnixStream::connect(dir.join("standin.sock")) {
        if let Some(code) = call(stream, &tool, &args[1..]) {
            // The exit status is the low 8 bits, as for Python's exit.
            return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
        }
    }
    let error = std::process::Command::new("python3")
        .arg(dir.join("standin.py"))
        .arg("as")
        .arg(&tool)
        .args(&args[1..])
        .exec();
    eprintln!("rcbsd-standin: cannot run python3: {error}");
    ExitCode::from(127)
}

/// The path the tool was started as, as the kernel gives a script's
/// interpreter: argv[0] when it has a slash, else its `$PATH` match.
fn tool_path(argv0: &OsStr) -> PathBuf {
    if argv0.as_bytes().contains(&b'/') {
        return PathBuf::from(argv0);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(argv0))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(argv0))
}

/// One call through the server: its exit code, or None when the request
/// could not be sent (then the caller runs the stand-in itself). Exits 1
/// when the server took the call but gave no exit code (it was stopped).
fn call(mut stream: UnixStream, tool: &Path, args: &[OsString]) -> Option<i32> {
    let cwd = std::env::current_dir().ok()?;
    let mask = umask(Mode::empty());
    umask(mask);
    let mut fields: Vec<Vec<u8>> = vec![
        cwd.as_os_str().as_bytes().to_vec(),
        mask.bits().to_string().into_bytes(),
        (args.len() + 1).to_string().into_bytes(),
        tool.as_os_str().as_bytes().to_vec(),
    ];
    fields.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    for (key, value) in std::env::vars_os() {
        let mut entry = key.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        fields.push(entry);
    }
    let mut payload = Vec::new();
    for field in &fields {
        if field.contains(&0) {
            return None;
        }
        payload.extend_from_slice(field);
        payload.push(0);
    }
    let length = u32::try_from(payload.len()).ok()?;
    let mut request = length.to_le_bytes().to_vec();
    request.extend_from_slice(&payload);
    let fds = [0, 1, 2];
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(&request)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ok()?;
    stream.write_all(&request[sent..]).ok()?;
    let mut code = [0u8; 4];
    match stream.read_exact(&mut code) {
        Ok(()) => Some(i32::from_le_bytes(code)),
        Err(_) => {
            eprintln!("rcbsd-standin: the stand-in server gave no exit code (stopped?)");
            Some(1)
        }
    }
}
