//! What the commands print: one line per outcome, the status table or
//! JSON (refreshed with `--watch`), names escaped for the terminal.

pub use crate::status::printable;
use crate::{Result, forwarder::Forwarder, status::Status};

pub fn print_status(status: &Status, json: bool, watching: bool) -> Result<()> {
    let json_err = |e| crate::Error::kernel("json", e);
    match (json, watching) {
        (true, false) => println!(
            "{}",
            serde_json::to_string_pretty(status).map_err(json_err)?
        ),
        (true, true) => println!("{}", serde_json::to_string(status).map_err(json_err)?),
        // Home the cursor and clear the screen: the table refreshes in place.
        (false, true) => print!("\x1b[H\x1b[2J{status}"),
        (false, false) => print!("{status}"),
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// `status --watch`: a sample every interval, with rates from the previous one,
/// until interrupted.
pub async fn watch_status(
    fwd: &Forwarder,
    json: bool,
    interval: std::time::Duration,
) -> Result<()> {
    let mut previous: Option<(Status, std::time::Instant)> = None;
    loop {
        let mut status = fwd.status().await?;
        let now = std::time::Instant::now();
        if let Some((before, at)) = &previous {
            status.set_rates(before, now - *at);
        }
        print_status(&status, json, true)?;
        previous = Some((status, now));
        tokio::time::sleep(interval).await;
    }
}
