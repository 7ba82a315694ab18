//! Learned templates and matching pursuit (spec §8): the first clustering's cluster means become
//! templates ([`learned_templates`]), every batch is explained greedily by scaled copies of them
//! ([`TemplateMatcher`]), and similar templates are merged ([`merge_templates`]).
//!
//! Templates are `(K, n_channels, n_pcs)` arrays throughout: PC coefficients per channel, the
//! layout of the clustering's `Wall` (Kilosort4's matching code uses the transposed `U`,
//! `(K, n_pcs, n_channels)`).

mod merge;
mod prepare;
mod pursuit;
mod scores;
mod table;
mod templates;
mod xcorr;

#[cfg(test)]
mod pursuit_tests;

pub use merge::{LabelledSpikes, Merge, MergeCandidate, MergeOptions, Merged, merge_templates, similar_norms};
pub use prepare::SUPPORT_ENERGY_FRACTION;
pub use pursuit::{MatchedBatch, MatchingOptions, TemplateMatcher};
pub use templates::{DUPLICATE_SIMILARITY, align_template, align_templates, learned_templates};
pub use xcorr::{pc_lag_products, similar_templates, template_cross_correlations};
