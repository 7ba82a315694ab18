//! Spike detection with universal templates (spec §6): the temporal basis (`wPCA`, `wTEMP`),
//! the template-position grid with its channel neighbourhoods and spatial envelopes, and the
//! matching of every batch against them.

mod basis;
mod grid;

pub use basis::TemporalBasis;
pub use grid::{TemplateGrid, grid_axes, vertical_spacing};
