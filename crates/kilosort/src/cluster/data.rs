//! The data matrix of one clustering centre (spec §7.2): every spike whose template belongs to
//! the centre, with its features placed on the union of the templates' channels.

use ndarray::{Array2, ArrayView2, ArrayView3};

/// The spikes of one centre in a common feature space.
#[derive(Debug, Clone, PartialEq)]
pub struct CentreData {
    /// Index (into the input spike list) of each row, ascending.
    pub spikes: Vec<usize>,
    /// Probe channels spanned by the centre's templates, ascending (`ichan`).
    pub channels: Vec<usize>,
    /// `(spikes, channels · n_pcs)`: row i holds spike `spikes[i]`'s features, channel-major and
    /// PC-minor, zero on the union channels its template does not cover (`Xd`).
    pub matrix: Array2<f32>,
}

/// Builds `Xd` for the centre owning `templates` (ascending ids) and the spikes `spikes`
/// (ascending), each of which has one of those templates.
///
/// `features` is `(n_spikes, nearest_chans, n_pcs)` and `template_channels` `(n_templates,
/// nearest_chans)`: feature row c of a spike belongs to channel `template_channels[[t, c]]` of its
/// template t. The union runs over all the centre's templates, as in Kilosort4, even those
/// without spikes: it decides which column is last, and the split test overwrites that one.
#[doc(alias = "get_data_cpu")]
pub fn centre_data(
    features: ArrayView3<f32>,
    spike_template: &[u32],
    template_channels: ArrayView2<usize>,
    templates: &[usize],
    spikes: Vec<usize>,
) -> CentreData {
    let (_, n_near, n_pcs) = features.dim();
    let mut channels: Vec<usize> = templates.iter().flat_map(|&t| template_channels.row(t).to_vec()).collect();
    channels.sort_unstable();
    channels.dedup();
    // Union position of each of a template's channels (Kilosort4's `imap`).
    let slots: Vec<Vec<usize>> = templates
        .iter()
        .map(|&t| template_channels.row(t).iter().map(|c| channels.binary_search(c).expect("in the union")).collect())
        .collect();
    let mut matrix = Array2::zeros((spikes.len(), channels.len() * n_pcs));
    for (mut row, &s) in matrix.rows_mut().into_iter().zip(&spikes) {
        let t = templates.binary_search(&(spike_template[s] as usize)).expect("spike's template is in the centre");
        for (c, &slot) in slots[t].iter().enumerate().take(n_near) {
            for p in 0..n_pcs {
                row[slot * n_pcs + p] = features[[s, c, p]];
            }
        }
    }
    CentreData { spikes, channels, matrix }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn features_land_on_their_channels_in_the_union() {
        // Templates 0 and 1 on channels (4, 2) and (2, 7) form the centre (template 3, on
        // channels (9, 4), too, though it has no spikes); 2 PCs.
        let template_channels = array![[4usize, 2], [2, 7], [0, 1], [9, 4]];
        let mut features = Array3::<f32>::zeros((4, 2, 2));
        for s in 0..4 {
            for c in 0..2 {
                for p in 0..2 {
                    features[[s, c, p]] = (100 * s + 10 * c + p) as f32;
                }
            }
        }
        let spike_template = [0, 2, 1, 0];
        let data = centre_data(features.view(), &spike_template, template_channels.view(), &[0, 1, 3], vec![0, 2, 3]);
        assert_eq!(data.channels, [2, 4, 7, 9]);
        assert_eq!(data.spikes, [0, 2, 3]);
        // Columns: ch2 (p0, p1), ch4 (p0, p1), ch7 (p0, p1), ch9 (p0, p1).
        assert_eq!(data.matrix.row(0).to_vec(), [10.0, 11.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(data.matrix.row(1).to_vec(), [200.0, 201.0, 0.0, 0.0, 210.0, 211.0, 0.0, 0.0]);
        assert_eq!(data.matrix.row(2).to_vec(), [310.0, 311.0, 300.0, 301.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
