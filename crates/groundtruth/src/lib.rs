//! Ground truth: simulated recordings and a scorer (filled by the ground-truth issue).
