//! Layer 5 of 5, the top: the only code that renders or prints.
//!
//! Owns: the command line ([`cli`]: the clap schema, translated into the
//! library's types here, and everything a command prints) and [`metrics`]
//! (`status` as OpenMetrics or Prometheus text).
//! May use: every layer below. Nothing outside `cli/` imports `cli`.

pub mod cli;
pub mod metrics;
