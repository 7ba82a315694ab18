//! # groundtruth
//!
//! The measuring instrument of kilosort-rs: a simulator of extracellular recordings with known
//! spikes ([`sim`]), and a scorer that compares any sorting to ground truth the way
//! SpikeInterface and Kilosort do ([`compare`]). It also generates the kilosort library's built-in
//! universal temporal templates from a fixed simulation ([`universal`]).
#![deny(missing_docs)]

pub mod compare;
pub mod sim;
pub mod universal;
