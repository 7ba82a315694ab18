"""Make the Kilosort4 settings fixtures in tests/data/settings/.

Run from the repository root with:

    ~/ks-bench/.venv/bin/python tests/data/make_settings_fixture.py

Tested with kilosort 4.1.7.  Output is deterministic.

Writes (under tests/data/settings/):

* ks4_default_settings.json
    kilosort.parameters.DEFAULT_SETTINGS with n_chan_bin = 385, dumped with
    Python's json module (inf is written as Infinity, None as null).
* ks4_custom_settings.json
    The same with a few values changed (see CUSTOM below) plus one key,
    duplicate_spike_bins, which Kilosort4 does not know and ignores.
"""

import json
from pathlib import Path

from kilosort.parameters import DEFAULT_SETTINGS

OUT = Path(__file__).parent / "settings"

CUSTOM = {
    "nblocks": 5,
    "Th_universal": 10,
    "tmax": 30.5,
    "drift_smoothing": [1, 0.5, 0.5],
    "dmin": 20,
    "x_centers": 2,
    "max_cluster_subset": None,
    "shift": -5,
    "scale": 0.195,
    "duplicate_spike_bins": 7,
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    default = {**DEFAULT_SETTINGS, "n_chan_bin": 385}
    custom = {**default, **CUSTOM}
    for name, d in [("ks4_default_settings.json", default),
                    ("ks4_custom_settings.json", custom)]:
        with open(OUT / name, "w") as f:
            json.dump(d, f, indent=1)
            f.write("\n")
        print(f"{name}: {len(d)} keys")
    unknown = sorted(set(custom) - set(DEFAULT_SETTINGS))
    print("keys not in DEFAULT_SETTINGS:", unknown)


if __name__ == "__main__":
    main()
