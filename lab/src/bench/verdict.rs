//! What a rate measured with a synchronous generator says.
//!
//! The generators here ([`super::generator`]) send from the CPU that then
//! forwards the frame: one frame costs the generator's time plus the
//! path's (forwarder, redirect, the receiving veth, the sink). The probe
//! measures the generator alone into a sink, `G` Mpps; a path measured at
//! `R` Mpps then costs `1000/R − 1000/G` ns per frame by itself, and could
//! forward `1000 / that` Mpps fed by a generator that costs nothing.
//!
//! When `G` is below what the floor's path could forward, the generator is
//! the bottleneck: the Mpps of two paths differ by less than their own
//! costs do (both carry the generator's time), so their Mpps ratio says too
//! little. The table then says "generator-bound" and compares the paths'
//! own costs instead.

/// ns per frame of a path measured at `mpps` behind a generator of
/// `generator` Mpps alone; `None` when the path was not slower than the
/// generator alone (noise: nothing to subtract from).
pub fn path_ns(mpps: f64, generator: f64) -> Option<f64> {
    let ns = 1000.0 / mpps - 1000.0 / generator;
    (mpps > 0.0 && generator > 0.0 && ns > 0.0).then_some(ns)
}

/// How a subject compares to a baseline (the floor, or the bridge).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ratio {
    /// The generator outruns the floor: the Mpps ratio.
    Mpps(f64),
    /// The generator is slower than the floor could forward: the ratio of
    /// the paths' own rates (baseline's ns / subject's ns), beside the raw
    /// Mpps ratio.
    GeneratorBound { path: f64, mpps: f64 },
    /// Not comparable: a path not measurably slower than the generator.
    Unknown,
}

impl Ratio {
    /// `subject` against `baseline` (Mpps), with the floor's Mpps and the
    /// generator's alone, all from one invocation.
    pub fn of(subject: f64, baseline: f64, floor: f64, generator: f64) -> Ratio {
        let mpps = subject / baseline;
        match path_ns(floor, generator) {
            Some(floor_ns) if generator < 1000.0 / floor_ns => {
                match (path_ns(subject, generator), path_ns(baseline, generator)) {
                    (Some(s), Some(b)) => Ratio::GeneratorBound { path: b / s, mpps },
                    _ => Ratio::Unknown,
                }
            }
            _ => Ratio::Mpps(mpps),
        }
    }

    /// The number a goal is checked against.
    pub fn value(self) -> Option<f64> {
        match self {
            Ratio::Mpps(r) | Ratio::GeneratorBound { path: r, .. } => Some(r),
            Ratio::Unknown => None,
        }
    }

    /// The table cell.
    pub fn cell(self) -> String {
        match self {
            Ratio::Mpps(r) => format!("{r:.2}×"),
            Ratio::GeneratorBound { path, mpps } => {
                format!("generator-bound: path {path:.2}× (Mpps {mpps:.2}×)")
            }
            Ratio::Unknown => "generator-bound: path not measurable".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_costs_its_time_beyond_the_generators() {
        // Generator alone 2 Mpps (500 ns), path measured at 1 Mpps (1000 ns).
        assert_eq!(path_ns(1.0, 2.0), Some(500.0));
        assert_eq!(path_ns(2.5, 2.0), None, "faster than the generator: noise");
    }

    #[test]
    fn a_slow_generator_makes_the_table_say_generator_bound() {
        // Generator 2 Mpps (500 ns); floor path 1.6 Mpps: 625 − 500 = 125 ns
        // of its own, 8 Mpps it could forward: the generator is the bottleneck.
        // Subject at 1.25 Mpps: 300 ns; baseline at 1.5: 166.7 ns.
        let r = Ratio::of(1.25, 1.5, 1.6, 2.0);
        let Ratio::GeneratorBound { path, mpps } = r else {
            panic!("{r:?}");
        };
        assert!((path - 166.67 / 300.0).abs() < 1e-3, "{path}");
        assert!((mpps - 1.25 / 1.5).abs() < 1e-9);
        assert!(
            r.cell().starts_with("generator-bound: path 0.56×"),
            "{}",
            r.cell()
        );
        assert_eq!(r.value(), Some(path));
    }

    #[test]
    fn a_fast_generator_gives_the_mpps_ratio() {
        // Generator 20 Mpps (50 ns); floor 4 Mpps: 200 ns of its own, 5 Mpps
        // it could forward: below the generator.
        let r = Ratio::of(3.8, 4.0, 4.0, 20.0);
        assert_eq!(r, Ratio::Mpps(0.95));
        assert_eq!(r.cell(), "0.95×");
    }
}
