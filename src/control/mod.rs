//! The control socket: a Unix stream socket (mode 0600, owned by root) that
//! speaks newline-delimited JSON. [`protocol`] holds the messages, `server`
//! the daemon side, `client` the CLI side.

pub mod client;
pub mod protocol;
pub mod server;
