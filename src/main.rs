//! `rcbsd-failover`: the command line is in the library ([`rcbsd_failover::cli`]).

fn main() -> std::process::ExitCode {
    rcbsd_failover::cli::main(std::env::args_os())
}
