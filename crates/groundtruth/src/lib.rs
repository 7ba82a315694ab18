//! # groundtruth
//!
//! The measuring instrument of kilosort-rs: a simulator of extracellular recordings with known
//! spikes ([`sim`]), and a scorer that compares any sorting to ground truth the way
//! SpikeInterface and Kilosort do ([`compare`]).
#![deny(missing_docs)]

pub mod compare;
pub mod sim;
