#!/usr/bin/env python
"""Run Kilosort4 4.1.7 on a ground-truth set and keep every stage's output, for comparing
kilosort-rs with it stage by stage (issue 18).

  ~/ks-bench/.venv/bin/python bench/ks4_stages.py mearec_static [--out DIR]

Reads   $KS_BENCH_HOME/data/<set>/{recording.bin, probe.json, meta.json}
Writes  DIR (default $KS_BENCH_HOME/runs/ks4-stages/<set>/): Kilosort4's results folder plus
        stages/*.npy:
          wPCA, wTEMP                 temporal basis and templates of the universal detection
          st0, tF0                    universal detections (time, x, y, amp, …) and their features
          clu0, Wall0                 first clustering labels and templates (K, Nchan, nPC)
          Wall3                       learned templates after alignment and 'mu' merging (K, nPC, Nchan)
          st_match                    matched spikes (time, template, threshold amplitude)
          clu_final, Wall_final       final clustering after the 'ccg' merge
          Wrot, dshift                whitening matrix, drift estimate

Kilosort4's own functions are wrapped (not changed) so the sequence is exactly run_kilosort's.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

import sys

import kilosort.run_kilosort  # noqa: F401  (the package re-exports the function under the module's name)
from kilosort import clustering_qr, spikedetect, template_matching
from kilosort.io import load_probe

rk = sys.modules["kilosort.run_kilosort"]

BENCH_HOME = Path(os.environ.get("KS_BENCH_HOME", Path.home() / "ks-bench"))


def as_numpy(x):
    return x.cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def wrap(module, name, stages, save):
    """Replaces module.name by a function that calls it and hands its result to save()."""
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        save(stages, args, out)
        return out

    setattr(module, name, wrapped)
    return wrapped


def save_detect(stages, args, out):
    st0, tF, ops = out
    np.save(stages / "st0.npy", as_numpy(st0))
    np.save(stages / "tF0.npy", as_numpy(tF))
    np.save(stages / "wPCA.npy", as_numpy(ops["wPCA"]))
    np.save(stages / "wTEMP.npy", as_numpy(ops["wTEMP"]))


def save_cluster(stages, args, out):
    clu, Wall = out
    tag = "0" if not (stages / "clu0.npy").exists() else "_final"
    np.save(stages / f"clu{tag}.npy", as_numpy(clu))
    np.save(stages / f"Wall{tag}.npy", as_numpy(Wall))


def save_learned(stages, args, out):
    np.save(stages / "Wall3.npy", as_numpy(out))


def save_extract(stages, args, out):
    st, tF, ops = out
    np.save(stages / "st_match.npy", as_numpy(st))
    np.save(stages / "Wrot.npy", as_numpy(ops["Wrot"]))
    if "dshift" in ops and ops["dshift"] is not None:
        np.save(stages / "dshift.npy", as_numpy(ops["dshift"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    data = BENCH_HOME / "data" / a.dataset
    out = Path(a.out) if a.out else BENCH_HOME / "runs" / "ks4-stages" / a.dataset
    stages = out / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    for stale in stages.glob("*.npy"):
        stale.unlink()
    meta = json.loads((data / "meta.json").read_text())

    wrap(spikedetect, "run", stages, save_detect)
    # run_kilosort imported these modules, so wrapping the module attributes is enough.
    wrap(clustering_qr, "run", stages, save_cluster)
    wrap(template_matching, "postprocess_templates", stages, save_learned)
    wrap(template_matching, "extract", stages, save_extract)

    settings = {"n_chan_bin": int(meta["n_chan"]), "fs": float(meta["fs"])}
    rk.run_kilosort(settings=settings, probe=load_probe(data / "probe.json"), filename=data / meta["binary"],
                    results_dir=out, data_dtype="int16", device=torch.device("cpu"), do_CAR=True)
    print("stages in", stages)


if __name__ == "__main__":
    main()
