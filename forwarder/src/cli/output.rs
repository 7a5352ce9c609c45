//! What the commands print: one line per outcome; `status` as a table, JSON
//! or OpenMetrics, on stdout or into a file (refreshed with `--watch`),
//! names escaped for the terminal.

use std::io::IsTerminal as _;
use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use super::args::FormatArg;
use crate::{
    Result,
    attach::Attached,
    detach::{Detached, Outcome},
    forwarder::Forwarder,
    metrics,
    status::{Iface, Status},
};

/// `attach`'s line on stdout, and what its mode cannot carry on stderr.
pub fn attached(done: &Attached) {
    let vid = done.vid.map(|v| format!(", VID {v}")).unwrap_or_default();
    let what = if done.unchanged {
        "already attached"
    } else {
        "attached"
    };
    let mut why = done
        .mode_reason
        .as_ref()
        .map(|r| format!("; {r}"))
        .unwrap_or_default();
    if !done.repaired.is_empty() {
        why.push_str(&format!("; repaired: {}", done.repaired.join(", ")));
    }
    if !done.moved.is_empty() {
        let moved: Vec<String> = done
            .moved
            .iter()
            .map(|m| format!("{} ({} → {})", printable(&m.iface), m.from, m.to))
            .collect();
        why.push_str(&format!(
            "; moved {} so that every direction works",
            moved.join(", ")
        ));
    }
    let kind = match done.kind {
        crate::station::PortKind::Wifi => ", Wi-Fi station: translated to its MAC",
        crate::station::PortKind::Ethernet => "",
    };
    println!(
        "{}: {what} as {} ({} mode{vid}{kind}){why}",
        printable(&done.iface),
        done.role,
        done.mode
    );
    if let Some(caveat) = &done.caveat {
        eprintln!("warning: {}: {caveat}", printable(&done.iface));
    }
}

/// `detach IFACE`'s line.
pub fn detached(d: &Detached) {
    let note = d
        .note
        .as_ref()
        .map(|r| format!("; {r}"))
        .unwrap_or_default();
    println!("{}: detached ({}){note}", printable(&d.iface), d.role);
}

/// `detach --all` / `--gone`: a line per port; returns how many failed.
pub fn detached_each(done: &[Outcome]) -> usize {
    if done.is_empty() {
        println!("nothing attached");
    }
    let mut failed = 0;
    for Outcome { port, error } in done {
        match error {
            None => println!("{}: detached ({})", printable(&port.iface), port.role),
            Some(e) => {
                failed += 1;
                println!(
                    "{}: NOT detached ({}): {e}",
                    printable(&port.iface),
                    port.role
                );
            }
        }
    }
    failed
}

/// `set-router-iface`'s line.
pub fn router_iface_set(iface: &str, ifindex: u32) {
    println!("router_iface → {} (ifindex {ifindex})", printable(iface));
}

/// `set-router-iface --clear`: what it pointed at.
pub fn router_iface_cleared(before: Option<u32>) {
    match before {
        Some(ifindex) => println!("router_iface cleared (it was ifindex {ifindex})"),
        None => println!("router_iface was empty"),
    }
}

/// `inspect`, as text or JSON.
pub fn inspection(found: &crate::inspect::Inspection, json: bool) -> Result<()> {
    if json {
        let text =
            serde_json::to_string_pretty(found).map_err(|e| crate::Error::Output(e.to_string()))?;
        println!("{text}");
    } else {
        println!("{found}");
    }
    Ok(())
}

/// `export-objects`: the files written.
pub fn exported(paths: &[PathBuf]) {
    for path in paths {
        println!("{}", path.display());
    }
}

/// `export-objects --libbpf-1.1`: whether `router_iface` is pinned for
/// xdp-loader to share.
pub fn router_iface_prepared(result: Result<PathBuf>, pin_dir: &Path) {
    match result {
        Ok(path) => println!("{} is pinned: xdp-loader can share it", path.display()),
        Err(e) => eprintln!(
            "note: router_iface is not pinned ({e}); run `xdp-forwarder set-router-iface IFACE` \
             (or this command again) as root before `xdp-loader load ... -p {}`",
            pin_dir.display()
        ),
    }
}

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
        let json_err = |e: serde_json::Error| crate::Error::Output(e.to_string());
        let text = match (self.format, self.watching) {
            (FormatArg::Json, false) => {
                serde_json::to_string_pretty(status).map_err(json_err)? + "\n"
            }
            (FormatArg::Json, true) => serde_json::to_string(status).map_err(json_err)? + "\n",
            (FormatArg::Openmetrics, _) => metrics::openmetrics(status),
            (FormatArg::Prometheus, _) => metrics::prometheus(status),
            // Home the cursor and clear the screen: the table refreshes in
            // place on a terminal; elsewhere (a pipe, a log) the samples
            // follow each other.
            (FormatArg::Text, true)
                if self.textfile.is_none() && std::io::stdout().is_terminal() =>
            {
                format!("\x1b[H\x1b[2J{status}")
            }
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
    router_prefix: &[u8],
) -> Result<()> {
    let mut previous: Option<(Status, std::time::Instant)> = None;
    loop {
        let mut status = fwd.status_with_prefix(router_prefix).await?;
        let now = std::time::Instant::now();
        if let Some((before, at)) = &previous {
            status.set_rates(before, now - *at);
        }
        sink.show(&status)?;
        previous = Some((status, now));
        tokio::time::sleep(interval).await;
    }
}

/// The table `status` prints.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pin dir:      {}", self.pin_dir)?;
        match &self.router_iface {
            Some(Iface { ifindex, name }) => writeln!(
                f,
                "router_iface: {} (ifindex {ifindex})",
                name.as_deref()
                    .map_or_else(|| "<gone>".to_owned(), printable)
            )?,
            None => writeln!(f, "router_iface: not set (physical ports drop everything)")?,
        }
        if let Some(note) = self.standby_note() {
            writeln!(f, "note: {note}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if self.ports.is_empty() {
            return writeln!(f, "no port attached");
        }
        let rates = self.ports.iter().any(|p| p.rates.is_some());
        write!(
            f,
            "{:<16} {:>7}  {:<8}  {:<6}  {:>4}  {:>5}  {:<4}  {:<8}  {:>12}  {:>10}",
            "IFACE",
            "IFINDEX",
            "ROLE",
            "MODE",
            "VID",
            "MTU",
            "LINK",
            "ATTACHED",
            "FORWARDED",
            "DROPPED"
        )?;
        if rates {
            write!(f, "  {:>10}  {:>10}", "FRAMES/S", "BITS/S")?;
        }
        writeln!(f)?;
        for p in &self.ports {
            let count = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let elsewhere = p.netns != self.netns;
            let name = match (&p.name, elsewhere) {
                (Some(n), _) => printable(n),
                (None, false) => "<gone>".to_owned(),
                (None, true) => p.netns_name.as_deref().map_or_else(
                    || "<other netns>".to_owned(),
                    |n| format!("<netns {}>", printable(n)),
                ),
            };
            let link = match (elsewhere, p.up) {
                (true, _) => "-",
                (false, true) => "up",
                (false, false) => "down",
            };
            write!(
                f,
                "{:<16} {:>7}  {:<8}  {:<6}  {:>4}  {:>5}  {:<4}  {:<8}  {:>12}  {:>10}",
                name,
                p.ifindex,
                p.role.to_string(),
                p.mode.to_string(),
                p.vid.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                p.mtu.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                link,
                if p.attached { "yes" } else { "NO" },
                count(p.counters.as_ref().map(|c| c.forwarded_frames)),
                count(p.counters.as_ref().map(|c| c.dropped_total)),
            )?;
            if rates {
                match &p.rates {
                    Some(r) => write!(
                        f,
                        "  {:>10}  {:>10}",
                        si(r.frames_per_sec),
                        si(r.bits_per_sec)
                    )?,
                    None => write!(f, "  {:>10}  {:>10}", "-", "-")?,
                }
            }
            writeln!(f)?;
            if let Some(c) = p.counters.as_ref().filter(|c| c.dropped_total > 0) {
                let reasons: Vec<String> = c
                    .dropped
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                writeln!(f, "  dropped: {}", reasons.join(", "))?;
            }
            if let Some(r) = &p.station_nat {
                writeln!(
                    f,
                    "  wifi station {}: table {} entries (learned {}, evicted {}), misses {}, \
                     translated {} out / {} in, eapol kept {}",
                    r.station_mac.as_deref().unwrap_or("<no slot>"),
                    r.entries,
                    r.learned,
                    r.evictions,
                    r.misses,
                    r.to_air,
                    r.to_router,
                    r.eapol + r.rsn_preauth
                )?;
            }
            for w in &p.warnings {
                writeln!(f, "  warning: {w}")?;
            }
            if let Some(caveat) = &p.caveat {
                writeln!(f, "  note: {caveat}")?;
            }
        }
        Ok(())
    }
}

/// `1234567.0` → `1.23M`: rates at a glance.
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.2}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// `name` with control characters escaped: interface names come from the
/// kernel and may hold anything but `/` and NUL.
pub fn printable(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name.to_owned()
    }
}
