//! What the commands print: one line per outcome; `status` as a table, JSON
//! or OpenMetrics, on stdout or into a file (refreshed with `--watch`),
//! names escaped for the terminal.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use super::args::FormatArg;
pub use crate::status::printable;
use crate::{Result, forwarder::Forwarder, metrics, status::Status};

/// Where and how `status` shows a sample.
pub struct Sink {
    format: FormatArg,
    textfile: Option<PathBuf>,
    watching: bool,
}

impl Sink {
    pub fn new(format: FormatArg, textfile: Option<PathBuf>, watching: bool) -> Self {
        Self {
            format,
            textfile,
            watching,
        }
    }

    /// Prints (or writes) one sample.
    pub fn show(&self, status: &Status) -> Result<()> {
        let json_err = |e| crate::Error::kernel("json", e);
        let text = match (self.format, self.watching) {
            (FormatArg::Json, false) => {
                serde_json::to_string_pretty(status).map_err(json_err)? + "\n"
            }
            (FormatArg::Json, true) => serde_json::to_string(status).map_err(json_err)? + "\n",
            (FormatArg::Openmetrics, _) => metrics::openmetrics(status),
            // Home the cursor and clear the screen: the table refreshes in place.
            (FormatArg::Text, true) if self.textfile.is_none() => format!("\x1b[H\x1b[2J{status}"),
            (FormatArg::Text, _) => status.to_string(),
        };
        match &self.textfile {
            Some(path) => write_atomically(path, &text),
            None => {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`status | head`) ends the output quietly.
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                Ok(())
            }
        }
    }
}

/// Writes `text` to a temporary file beside `path` and renames it over
/// `path`: a reader (node_exporter) never sees half a document.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let fail = |what: &str, e| crate::Error::kernel(format!("cannot {what} {}", path.display()), e);
    std::fs::write(&tmp, text).map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("replace", e)
    })
}

/// `status --watch`: a sample every interval, with rates from the previous one,
/// until interrupted.
pub async fn watch_status(
    fwd: &Forwarder,
    sink: &Sink,
    interval: std::time::Duration,
) -> Result<()> {
    let mut previous: Option<(Status, std::time::Instant)> = None;
    loop {
        let mut status = fwd.status().await?;
        let now = std::time::Instant::now();
        if let Some((before, at)) = &previous {
            status.set_rates(before, now - *at);
        }
        sink.show(&status)?;
        previous = Some((status, now));
        tokio::time::sleep(interval).await;
    }
}
