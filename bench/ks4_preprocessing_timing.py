"""Times Kilosort4 4.1.7's preprocessing on CPU, for the side-by-side figure in docs/benchmarks.md.

    ~/ks-bench/.venv/bin/python bench/ks4_preprocessing_timing.py DATA_DIR [--batches 5] [--threads 1] [--drift]

DATA_DIR holds recording.bin (int16) and probe.json (a `kilosort-rs simulate` folder). Prints
JSON: the whitening-matrix fit (`compute_preprocessing`) in seconds, and the mean time to filter
and whiten one padded batch (`BinaryFiltered.padded_batch_to_torch`), with the thread count.
With --drift, also the whole drift stage (`compute_drift_correction`, "Computing drift
correction" in Kilosort4's log), which is slow on CPU (tens of minutes at 384 channels).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from kilosort import io, preprocessing
from kilosort.parameters import DEFAULT_SETTINGS
from kilosort.run_kilosort import compute_drift_correction, compute_preprocessing, initialize_ops, set_files

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--batches", type=int, default=5)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--drift", action="store_true")
args = parser.parse_args()
torch.set_num_threads(args.threads)
data_dir = Path(args.data_dir)
probe = io.load_probe(data_dir / "probe.json")
n_chan_bin = int(np.max(probe["chanMap"])) + 1
settings = {**DEFAULT_SETTINGS, "n_chan_bin": n_chan_bin, "filename": data_dir / "recording.bin"}
device = torch.device("cpu")
filename, data_dir_, results_dir, probe = set_files(settings, None, probe, None, None, None, None, None)
ops, settings = initialize_ops(settings, probe, "int16", True, False, device, False)

start = time.perf_counter()
ops = compute_preprocessing(ops, device)
fit_s = time.perf_counter() - start

bfile = io.BinaryFiltered(
    ops["filename"], n_chan_bin, ops["fs"], ops["batch_size"], ops["nt"], ops["nt0min"], ops["chanMap"],
    hp_filter=ops["preprocessing"]["hp_filter"], whiten_mat=ops["preprocessing"]["whiten_mat"],
    device=device, do_CAR=True, dtype="int16",
)
times = []
for b in range(1, 1 + args.batches):
    start = time.perf_counter()
    bfile.padded_batch_to_torch(b)
    times.append(time.perf_counter() - start)
result = {
    "sorter": "kilosort 4.1.7", "threads": args.threads, "n_channels": len(ops["chanMap"]),
    "n_batches": int(bfile.n_batches), "fit_whitening_s": fit_s,
    "batch_s_mean": float(np.mean(times)), "batch_s_min": float(np.min(times)),
}
if args.drift:
    start = time.perf_counter()
    compute_drift_correction(ops, device)
    result["drift_stage_s"] = time.perf_counter() - start
print(json.dumps(result))
