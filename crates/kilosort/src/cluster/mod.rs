//! Graph-based clustering (spec §7). So far: the grouping centres that split the probe into
//! regions clustered separately; the kNN graph, label propagation and splits come next.

mod centres;

pub use centres::{lateral_centres, nearest_centre, vertical_centres};
