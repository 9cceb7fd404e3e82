//! `prt-gate` binary: the CLI only; everything else lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    prt_gate::cli::main()
}
