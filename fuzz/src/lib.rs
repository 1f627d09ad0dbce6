//! The gateway's protocol parsers, compiled from their own source files for fuzzing: the
//! same code the gateway runs, without the rest of the gateway (see Cargo.toml).

pub mod qiwi;
