//! `status --format openmetrics` and `--format prometheus`: the counters
//! and the attachment state in the OpenMetrics text format (Prometheus
//! scraping with OpenMetrics negotiated) and in the classic Prometheus text
//! format (node_exporter's textfile collector, whose parser is the classic
//! one). The same families and samples in both; only counter and gauge
//! families. They differ where the formats do: a counter family's TYPE and
//! HELP name it without `_total` in OpenMetrics and as its sample (with
//! `_total`) in the classic format, whose parser otherwise takes the
//! samples for another, untyped family; only OpenMetrics ends with `# EOF`.

use std::fmt::Write as _;

use crate::status::Status;

/// The OpenMetrics document for one sample of `status`.
pub fn openmetrics(status: &Status) -> String {
    exposition(status, Dialect::OpenMetrics)
}

/// The classic Prometheus text format (0.0.4) for one sample of `status`.
pub fn prometheus(status: &Status) -> String {
    exposition(status, Dialect::Prometheus)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenMetrics,
    Prometheus,
}

fn exposition(status: &Status, dialect: Dialect) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let suffix = if kind == "counter" { "_total" } else { "" };
        let family = match dialect {
            Dialect::OpenMetrics => format!("xdp_forwarder_{name}"),
            Dialect::Prometheus => format!("xdp_forwarder_{name}{suffix}"),
        };
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "xdp_forwarder_{name}{suffix}{{{labels}}} {value}");
        }
    };
    let port_labels: Vec<String> = status
        .ports
        .iter()
        .map(|p| {
            let mut labels = vec![
                ("iface", p.name.clone().unwrap_or_default()),
                ("ifindex", p.ifindex.to_string()),
                ("role", p.role.to_string()),
                ("mode", p.mode.to_string()),
                ("kind", p.kind.to_string()),
            ];
            if let Some(vid) = p.vid {
                labels.push(("vid", vid.to_string()));
            }
            render(&labels)
        })
        .collect();
    let each = |value: &dyn Fn(&crate::status::Port) -> Option<u64>| -> Vec<(String, u64)> {
        status
            .ports
            .iter()
            .zip(&port_labels)
            .filter_map(|(p, l)| Some((l.clone(), value(p)?)))
            .collect()
    };
    family(
        "port_attached",
        "gauge",
        "1 when the kernel runs this port's program on its interface, else 0.",
        each(&|p| Some(u64::from(p.attached))),
    );
    family(
        "port_up",
        "gauge",
        "1 when the port's link is up.",
        each(&|p| Some(u64::from(p.up))),
    );
    family(
        "port_can_forward",
        "gauge",
        "1 when the port can forward: attached, up with a carrier, and for a NIC a router to send to.",
        each(&|p| Some(u64::from(p.can_forward))),
    );
    family(
        "port_warnings",
        "gauge",
        "How many warnings `status` shows for the port.",
        each(&|p| Some(p.warnings.len() as u64)),
    );
    family(
        "forwarded_frames",
        "counter",
        "Frames the port's program forwarded since it was attached.",
        each(&|p| p.counters.as_ref().map(|c| c.forwarded_frames)),
    );
    family(
        "forwarded_bytes",
        "counter",
        "Bytes of those frames, as received.",
        each(&|p| p.counters.as_ref().map(|c| c.forwarded_bytes)),
    );
    let drops = status
        .ports
        .iter()
        .zip(&port_labels)
        .filter_map(|(p, l)| Some((l, p.counters.as_ref()?)))
        .flat_map(|(l, c)| {
            c.dropped.iter().map(move |(reason, n)| {
                (format!("{l},{}", render(&[("reason", reason.clone())])), *n)
            })
        })
        .collect();
    family(
        "dropped_frames",
        "counter",
        "Frames the port's program dropped, by reason.",
        drops,
    );
    let station = |value: &dyn Fn(&crate::station::StationReport) -> u64| {
        each(&|p| p.station_nat.as_ref().map(value))
    };
    family(
        "station_nat_entries",
        "gauge",
        "Wi-Fi stations: addresses the translation table holds for the port.",
        station(&|r| r.entries),
    );
    family(
        "station_nat_learned",
        "counter",
        "Wi-Fi stations: addresses new to the table, learned from what the VMs sent.",
        station(&|r| r.learned),
    );
    family(
        "station_nat_misses",
        "counter",
        "Wi-Fi stations: unicast to the station for an address no VM owns (kept by the net-vm).",
        station(&|r| r.misses),
    );
    family(
        "station_nat_evictions",
        "counter",
        "Wi-Fi stations: entries the kernel's LRU evicted from a full table.",
        station(&|r| r.evictions),
    );
    family(
        "station_nat_eapol_frames",
        "counter",
        "Wi-Fi stations: EAPOL and RSN pre-authentication frames kept for the supplicant.",
        station(&|r| r.eapol + r.rsn_preauth),
    );
    let router = status
        .router_iface
        .iter()
        .map(|r| {
            let labels = [
                ("iface", r.name.clone().unwrap_or_default()),
                ("ifindex", r.ifindex.to_string()),
            ];
            (render(&labels), 1)
        })
        .collect();
    family(
        "router_iface",
        "gauge",
        "1 for the interface router_iface points at (none: it is empty).",
        router,
    );
    if dialect == Dialect::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// `a="x",b="y"`, values escaped as both formats want (`\\`, `\"`, `\n`).
fn render(labels: &[(&str, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}
