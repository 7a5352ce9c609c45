//! `status --format openmetrics`: the counters and the attachment state in
//! the OpenMetrics text format, for Prometheus and node_exporter's textfile
//! collector. Only counter and gauge families: node_exporter's parser (the
//! Prometheus text format) also reads them; `info` and `unit` it would not.

use std::fmt::Write as _;

use crate::status::Status;

/// The document for one sample of `status`.
pub fn openmetrics(status: &Status) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# TYPE xdp_forwarder_{name} {kind}");
        let _ = writeln!(out, "# HELP xdp_forwarder_{name} {help}");
        let suffix = if kind == "counter" { "_total" } else { "" };
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
    out.push_str("# EOF\n");
    out
}

/// `a="x",b="y"`, values escaped as OpenMetrics wants (`\\`, `\"`, `\n`).
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
