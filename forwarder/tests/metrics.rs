//! `status --format openmetrics` (and `--textfile`), read back by a real
//! OpenMetrics parser (Python's prometheus_client, in a venv this test
//! makes) and checked number by number against `status --json`.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    in_fresh_netns,
    packet::{ETHERTYPE_TEST, frame, tagged},
    run,
    world::World,
};

/// prometheus_client, pinned; the venv is made once in cargo's temp dir,
/// from PyPI (so before the test enters a namespace without a network).
const PROMETHEUS_CLIENT: &str = "prometheus_client==0.21.1";

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openmetrics-venv");
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import prometheus_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        run("python3", &["-m", "venv", venv.to_str().unwrap()]);
        run(
            venv.join("bin/pip").to_str().unwrap(),
            &["install", "-q", PROMETHEUS_CLIENT],
        );
        assert!(
            ready(),
            "{PROMETHEUS_CLIENT} did not install into {}",
            venv.display()
        );
    }
    python
}

/// Every sample of `doc` as (family, type, sample name, labels, value); the
/// parser rejects anything that is not valid OpenMetrics.
fn parse(doc: &str) -> Vec<(String, String, String, Value, f64)> {
    parse_with("prometheus_client.openmetrics.parser", doc)
}

/// The same with prometheus_client's classic text-format parser (what
/// node_exporter's textfile collector and Prometheus without OpenMetrics
/// read); a sample it cannot tie to a TYPE line lands in an `unknown`
/// family.
fn parse_classic(doc: &str) -> Vec<(String, String, String, Value, f64)> {
    parse_with("prometheus_client.parser", doc)
}

fn parse_with(module: &str, doc: &str) -> Vec<(String, String, String, Value, f64)> {
    let mut child = Command::new(python())
        .args([
            "-c",
            &format!(
                "import sys, json\n\
                 from {module} import text_string_to_metric_families as p\n\
                 print(json.dumps([[f.name, f.type, s.name, s.labels, s.value]\n\
                                   for f in p(sys.stdin.read()) for s in f.samples]))"
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not OpenMetrics: {}\n{doc}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(String, String, String, Value, f64)>>(&out.stdout).unwrap()
}

/// The value of `sample` whose labels include all of `want`.
fn value(
    samples: &[(String, String, String, Value, f64)],
    sample: &str,
    want: &[(&str, &str)],
) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(_, _, n, labels, _)| {
            n == sample && want.iter().all(|(k, v)| labels[*k].as_str() == Some(*v))
        })
        .map(|s| s.4)
        .collect();
    assert_eq!(found.len(), 1, "{sample} {want:?}: {found:?}");
    found[0]
}

#[test]
fn openmetrics_matches_status_json() {
    python();
    in_fresh_netns(|| {
        // A name that needs escaping in a label value.
        let odd = "q\"\\x";
        let w = World::new("om")
            .nic("nic1")
            .nic(odd)
            .router("rtr", "02:01:00:00:00:0a")
            .attached("rtr", "router", &["--mode", "skb"])
            .attached("nic1", "physical", &["--vid", "10", "--mode", "skb"])
            .attached(odd, "physical", &["--vid", "20", "--mode", "skb"]);
        let p = w.pins.arg();
        // Traffic: 7 frames NIC → router, 3 back to VID 10, 2 with an
        // unknown VID and 1 untagged (drops with two reasons).
        let (nic, rtr) = (w.socket("nic1x"), w.socket("rtrx"));
        let f = frame(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            &ETHERTYPE_TEST.to_be_bytes(),
            80,
        );
        for _ in 0..7 {
            nic.send(&f);
        }
        for vid in [10, 10, 10, 99, 98] {
            rtr.send(&tagged(&f, 0x8100, vid));
        }
        rtr.send(&f);
        std::thread::sleep(Duration::from_millis(200));

        let json = w.status();
        let samples = parse(&w.cli_ok(&["status", "--format", "openmetrics"]));
        for port in json["ports"].as_array().unwrap() {
            let name = port["name"].as_str().unwrap();
            let me = [("iface", name)];
            let c = &port["counters"];
            assert_eq!(value(&samples, "xdp_forwarder_port_attached", &me), 1.0);
            for (sample, field) in [
                ("xdp_forwarder_forwarded_frames_total", "forwarded_frames"),
                ("xdp_forwarder_forwarded_bytes_total", "forwarded_bytes"),
            ] {
                assert_eq!(
                    value(&samples, sample, &me),
                    c[field].as_f64().unwrap(),
                    "{name} {field}"
                );
            }
            for (reason, n) in c["dropped"].as_object().unwrap() {
                let labels = [("iface", name), ("reason", reason.as_str())];
                assert_eq!(
                    value(&samples, "xdp_forwarder_dropped_frames_total", &labels),
                    n.as_f64().unwrap()
                );
            }
            let role = port["role"].as_str().unwrap();
            let mode = port["mode"].as_str().unwrap();
            let labels = samples
                .iter()
                .find(|s| s.2 == "xdp_forwarder_port_attached" && s.3["iface"] == name)
                .unwrap()
                .3
                .clone();
            assert_eq!(labels["role"], role);
            assert_eq!(labels["mode"], mode);
            assert_eq!(
                labels["vid"].as_str().map(|v| v.parse::<u64>().unwrap()),
                port["vid"].as_u64()
            );
        }
        // The numbers are the traffic's, not zeros.
        assert_eq!(
            value(
                &samples,
                "xdp_forwarder_forwarded_frames_total",
                &[("iface", "nic1")]
            ),
            7.0
        );
        assert_eq!(
            value(
                &samples,
                "xdp_forwarder_forwarded_frames_total",
                &[("iface", "rtr")]
            ),
            3.0
        );
        assert_eq!(
            value(
                &samples,
                "xdp_forwarder_dropped_frames_total",
                &[("iface", "rtr"), ("reason", "unknown_vid")]
            ),
            2.0
        );
        assert_eq!(
            value(
                &samples,
                "xdp_forwarder_dropped_frames_total",
                &[("iface", "rtr"), ("reason", "bad_tag")]
            ),
            1.0
        );
        assert_eq!(
            value(&samples, "xdp_forwarder_router_iface", &[("iface", "rtr")]),
            1.0
        );
        let families: Vec<(&str, &str)> = samples
            .iter()
            .map(|s| (s.0.as_str(), s.1.as_str()))
            .collect();
        assert!(families.contains(&("xdp_forwarder_forwarded_frames", "counter")));
        assert!(families.contains(&("xdp_forwarder_port_attached", "gauge")));
        assert!(
            samples.iter().all(|s| s.1 == "counter" || s.1 == "gauge"),
            "every sample typed: {samples:?}"
        );

        // The classic format, read by the classic parser: the same samples,
        // every one in a typed family (none `unknown`).
        let classic = parse_classic(&w.cli_ok(&["status", "--format", "prometheus"]));
        assert!(
            classic.iter().all(|s| s.1 == "counter" || s.1 == "gauge"),
            "every sample typed: {classic:?}"
        );
        let key = |v: &[(String, String, String, Value, f64)]| {
            let mut k: Vec<String> = v
                .iter()
                .map(|s| format!("{} {} {} {}", s.1, s.2, s.3, s.4))
                .collect();
            k.sort();
            k
        };
        assert_eq!(
            key(&classic),
            key(&samples),
            "the same samples in both formats"
        );
        assert_eq!(
            value(
                &classic,
                "xdp_forwarder_forwarded_frames_total",
                &[("iface", "nic1")]
            ),
            7.0
        );
        // --textfile alone writes what node_exporter's collector reads.
        let prom = w.pins.path().with_extension("classic.prom");
        w.cli_ok(&["status", "--textfile", prom.to_str().unwrap()]);
        let doc = std::fs::read_to_string(&prom).unwrap();
        assert_eq!(key(&parse_classic(&doc)), key(&samples), "{doc}");
        let _ = std::fs::remove_file(&prom);

        // --textfile with --watch: every read of the file is a whole document.
        let file = w.pins.path().with_extension("prom");
        let mut watcher = Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args([
                "status",
                "--format",
                "openmetrics",
                "--watch",
                "0.1",
                "--textfile",
            ])
            .arg(&file)
            .args(["--pin-dir", p])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !file.exists() {
            assert!(Instant::now() < deadline, "no textfile written");
            std::thread::sleep(Duration::from_millis(20));
        }
        let first = std::fs::metadata(&file).unwrap().modified().unwrap();
        for _ in 0..20 {
            let doc = std::fs::read_to_string(&file).unwrap();
            assert!(doc.ends_with("# EOF\n"), "{doc}");
            assert_eq!(
                value(
                    &parse(&doc),
                    "xdp_forwarder_forwarded_frames_total",
                    &[("iface", "nic1")]
                ),
                7.0
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        assert_ne!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            first,
            "rewritten every interval"
        );
        let _ = watcher.kill();
        let _ = watcher.wait();
        let _ = std::fs::remove_file(&file);
    });
}
