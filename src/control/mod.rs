//! The control socket: a Unix stream socket that speaks newline-delimited
//! JSON. [`protocol`] holds the messages, `server` the daemon side, `client`
//! the CLI side; [`peer`] finds who connected and [`access`] decides what
//! they may do (root: everything; `node.status_group`: `status` only).

pub mod access;
pub mod client;
pub mod peer;
pub mod protocol;
pub mod server;
