//! Reading the programs' per-CPU counters.

use std::path::Path;

use aya::maps::{Map, PerCpuArray};
use xdp_forwarder_common::PortCounters;

use crate::{Error, Result, state::pins::MapSpec};

/// The counters of one program instance (its `fwd_counters` map), summed over the CPUs.
pub fn sum(map: &Map) -> Result<PortCounters> {
    let array = PerCpuArray::<_, PortCounters>::try_from(map)
        .map_err(|e| Error::kernel("the counters map has an unexpected shape", e))?;
    let per_cpu = array
        .get(&0, 0)
        .map_err(|e| Error::kernel("cannot read the counters", e))?;
    Ok(per_cpu
        .iter()
        .fold(PortCounters::default(), |mut total, cpu| {
            total.add(cpu);
            total
        }))
}

/// The counters pinned at `path`; `None` when nothing is pinned there (a port
/// attached by an older version, or the pin was removed by hand).
/// A pin of another shape is an error naming the path and both shapes.
pub fn read_pinned(path: &Path) -> Result<Option<PortCounters>> {
    match crate::state::pins::open_existing(path, MapSpec::COUNTERS)? {
        Some(pinned) => sum(&Map::PerCpuArray(pinned.map))
            .map(Some)
            .map_err(|e| Error::kernel(format!("cannot read {}", path.display()), e)),
        None => Ok(None),
    }
}
