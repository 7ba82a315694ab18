//! Spike detection with universal templates (spec §6). So far: the template-position grid with
//! its channel neighbourhoods and spatial envelopes; the temporal templates and the matching
//! itself come next.

mod grid;

pub use grid::{TemplateGrid, grid_axes, vertical_spacing};
