#!/usr/bin/env python
"""Checks that a kilosort-rs results folder loads in phylib and SpikeInterface without warnings.

    KILOSORT_RS_PHY_DIR=/tmp/phy-check cargo test -p kilosort --test phy_folder -- --ignored
    ~/ks-bench/.venv/bin/python tests/phy/check_phy_folder.py /tmp/phy-check/results

Loads the folder with `phylib.io.model.load_model` (what `phy template-gui params.py` does),
exercises the data Phy's views ask for (templates, PC features, template features, traces,
cluster metadata), then with SpikeInterface's `read_kilosort` and `read_phy`. Any warning logged
(except phylib's note that no precomputed waveforms exist, logged for every Kilosort folder) or
raised through Python's `warnings` fails the check. Exits 0 on success.
"""
import logging
import sys
import warnings
from pathlib import Path

import numpy as np


# phylib logs this for every folder without `_phy_spikes_subset.*` files (Kilosort4's included):
# it then reads waveforms from the raw data, which is what the check wants.
EXPECTED = ("Skipping spike waveforms that do not exist",)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        message = record.getMessage()
        if not message.startswith(EXPECTED):
            self.records.append(f"{record.name}: {message}")


def check_phylib(folder):
    from phylib.io.model import load_model

    model = load_model(folder / "params.py")
    n = model.n_spikes
    k = model.n_templates
    nc = model.n_channels
    print(f"phylib: {n} spikes, {k} templates, {nc} channels, duration {model.duration:.3f} s")
    assert model.spike_times.shape == (n,) and np.all(np.diff(model.spike_times) >= 0)
    assert model.spike_samples.max() < model.traces.shape[0], "spikes after the end of the recording"
    assert np.array_equal(model.spike_clusters, model.spike_templates)
    assert model.sparse_templates.cols is None, "templates must be read as dense"
    assert model.sparse_templates.data.shape[0] == k and model.sparse_templates.data.shape[2] == nc
    assert model.similar_templates.shape == (k, k)
    assert model.wm.shape == (nc, nc) and model.wmi.shape == (nc, nc)
    assert model.channel_shanks.shape == (nc,)

    # FeatureView: sparse PC features, (n, nC, nPC) after phylib's transpose.
    f = model.sparse_features
    assert f.data.shape[0] == n and f.cols.shape == (k, f.data.shape[1])
    print(f"pc_features {f.data.shape} (after phylib's transpose), pc_feature_ind {f.cols.shape}")
    # TemplateFeatureView: (n, n_tf) with (K, n_tf) indices.
    tf = model.sparse_template_features
    assert tf is not None and tf.data.shape[0] == n and tf.cols.shape == (k, tf.data.shape[1])
    print(f"template_features {tf.data.shape}, template_feature_ind {tf.cols.shape}")

    for cluster in np.unique(model.spike_clusters):
        spikes = np.nonzero(model.spike_clusters == cluster)[0]
        template = model.get_template(cluster)
        assert template.best_channel in template.channel_ids
        feats = model.get_features(spikes, template.channel_ids)
        assert feats.shape == (spikes.size, template.channel_ids.size, f.data.shape[2])
        tfeat = model.get_template_features(spikes)
        assert tfeat.shape == (spikes.size, k)
        # A spike's strongest template feature is its own cluster's, for these synthetic units.
        own = np.mean(np.argmax(tfeat, axis=1) == cluster)
        print(
            f"  cluster {cluster}: {spikes.size} spikes, best channel {template.best_channel}, "
            f"{template.channel_ids.size} channels shown, features on them {feats.shape}, "
            f"own template strongest for {100 * own:.0f} %"
        )
        waveforms = model.get_waveforms(spikes[:5], template.channel_ids)
        assert waveforms.shape[0] == min(5, spikes.size)
    # What Phy's TemplateFeatureView plots for a pair: features on each cluster's templates.
    a, b = np.unique(model.spike_clusters)[:2]
    counts = [np.bincount(model.spike_templates[model.spike_clusters == c], minlength=k) for c in (a, b)]
    sa = np.nonzero(model.spike_clusters == a)[0]
    ta = model.get_template_features(sa)
    xa, ya = np.average(ta, weights=counts[0], axis=1), np.average(ta, weights=counts[1], axis=1)
    assert np.all(np.isfinite(xa)) and np.all(np.isfinite(ya)) and np.mean(xa > ya) > 0.5
    print(f"TemplateFeatureView pair ({a}, {b}): cluster {a} spikes at mean ({xa.mean():.2f}, {ya.mean():.2f})")
    depths = model.get_depths()
    # phylib weights channels by the positive part of the first PC feature, so a spike whose
    # first-PC features are all negative (a positive-going spike) has no depth there (NaN), as
    # with Kilosort4's folders.
    assert depths.shape == (n,) and np.mean(np.isfinite(depths)) > 0.9
    print(f"phylib depths: {np.isfinite(depths).sum()} of {n} spikes finite")
    labels = model.metadata["KSLabel"]
    assert set(labels) == set(range(k)) and set(labels.values()) <= {"good", "mua"}
    assert set(model.metadata["ContamPct"]) == set(range(k))
    assert set(model.metadata["Amplitude"]) == set(range(k))
    print(f"metadata fields: {sorted(model.metadata)}; KSLabel {labels}")
    print(f"spike attributes: {sorted(model.spike_attributes)}")
    model.close()
    return n, k


def check_spikeinterface(folder, n, k):
    from spikeinterface.extractors import read_kilosort, read_phy

    sorting = read_kilosort(folder)
    assert len(sorting.unit_ids) == k, sorting.unit_ids
    counts = sorting.count_num_spikes_per_unit()
    assert sum(counts.values()) == n
    assert set(sorting.get_property("KSLabel")) <= {"good", "mua"}
    good = read_kilosort(folder, keep_good_only=True)
    phy = read_phy(folder)
    assert len(phy.unit_ids) == k
    print(
        f"SpikeInterface: read_kilosort {len(sorting.unit_ids)} units, {n} spikes, "
        f"{len(good.unit_ids)} good; read_phy {len(phy.unit_ids)} units; properties {sorted(sorting.get_property_keys())}"
    )


def check_analyzer(folder):
    """SpikeInterface's analyzer view of the folder. It guesses the waveform window (with a
    warning) because it reads `nt0min` and `nt` from Kilosort4's pickled ops.npy, which
    kilosort-rs does not write: reported, not a failure."""
    from spikeinterface.extractors import read_kilosort_as_analyzer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyzer = read_kilosort_as_analyzer(folder, gain_to_uV=1.0, offset_to_uV=0.0)
    templates = analyzer.get_extension("templates").get_data()
    print(f"read_kilosort_as_analyzer: {analyzer.get_num_units()} units, templates {templates.shape}")
    for w in caught:
        print(f"  known: {w.category.__name__}: {str(w.message)[:100]}")


def main():
    folder = Path(sys.argv[1]).resolve()
    collector = Collect()
    logging.getLogger().addHandler(collector)
    logging.getLogger().setLevel(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n, k = check_phylib(folder)
        check_spikeinterface(folder, n, k)
    check_analyzer(folder)
    problems = collector.records + [f"{w.category.__name__}: {w.message}" for w in caught]
    if problems:
        print("WARNINGS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("OK: no warnings")


if __name__ == "__main__":
    main()
