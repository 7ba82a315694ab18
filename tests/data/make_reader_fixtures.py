"""Make reference batches from Kilosort4's binary reader in tests/data/reader/.

Run from the repository root with:

    ~/ks-bench/.venv/bin/python tests/data/make_reader_fixtures.py

Tested with kilosort 4.1.7 (torch on CPU).  Output is deterministic.

The reader is kilosort.io.BinaryRWFile: its padded_batch_to_torch returns the
raw padded batch (dtype conversion, optional shift/scale), before any mean
subtraction / CAR / filtering / whitening (those are added by the subclass
BinaryFiltered).  All cases use fs = 10, NT (batch_size) = 300, nt = 61,
int16 data.

Input files (int16, sample-major, i.e. (n_samples, n_chan) C order):

* ramp.bin      3 channels, 1000 samples, value(s, c) = 3*s + c
* ramp630.bin   3 channels,  630 samples, value(s, c) = 3*s + c
* ramp10k.bin   1 channel, 10000 samples, value(s) = s % 30000
* ramp200.bin   3 channels,  200 samples, value(s, c) = 3*s + c

Cases:

* A  ramp.bin,    tmin=0,  tmax=inf
* B  ramp.bin,    tmin=17, tmax=80.3
* C  ramp630.bin, tmin=0,  tmax=inf   (last partial batch is dropped)
* D  ramp10k.bin, tmin=0,  tmax=inf, batch_downsampling=3
* E  ramp.bin,    tmin=0,  tmax=25    (one batch; it reads past tmax)
* F  ramp200.bin, tmin=0,  tmax=inf   (file shorter than NT+nt; the batch
                                        ends in zeros)

For each case, case_<X>.json holds the reader's parameters and state
(imin, imax, n_samples, n_batches_raw, n_batches, total_samples) and, for
every batch index i in 0..n_batches, the [start, end] indices returned by
padded_batch_to_torch(i, return_inds=True).  "tmax": null means tmax = inf.
case_<X>_batches.npy holds every batch, shape (n_batches, n_chan, NT+2*nt),
float32; for case D only batch 5 is stored (case_D_batch5.npy, shape
(n_chan, NT+2*nt)).
"""

import json
from pathlib import Path

import numpy as np
import torch
from kilosort.io import BinaryRWFile

OUT = Path(__file__).parent / "reader"
FS = 10
NT = 300
NTW = 61


def ramp(n_samples, n_chan):
    s = np.arange(n_samples)[:, None]
    c = np.arange(n_chan)[None, :]
    return (3 * s + c).astype(np.int16)


def write_inputs():
    ramp(1000, 3).tofile(OUT / "ramp.bin")
    ramp(630, 3).tofile(OUT / "ramp630.bin")
    ramp(200, 3).tofile(OUT / "ramp200.bin")
    (np.arange(10000) % 30000).astype(np.int16).tofile(OUT / "ramp10k.bin")


CASES = {
    "A": dict(file="ramp.bin", n_chan_bin=3, tmin=0.0, tmax=np.inf, ds=1),
    "B": dict(file="ramp.bin", n_chan_bin=3, tmin=17.0, tmax=80.3, ds=1),
    "C": dict(file="ramp630.bin", n_chan_bin=3, tmin=0.0, tmax=np.inf, ds=1),
    "D": dict(file="ramp10k.bin", n_chan_bin=1, tmin=0.0, tmax=np.inf, ds=3),
    "E": dict(file="ramp.bin", n_chan_bin=3, tmin=0.0, tmax=25.0, ds=1),
    "F": dict(file="ramp200.bin", n_chan_bin=3, tmin=0.0, tmax=np.inf, ds=1),
}


def run_case(name, c):
    bfile = BinaryRWFile(
        OUT / c["file"], n_chan_bin=c["n_chan_bin"], fs=FS, NT=NT, nt=NTW,
        device=torch.device("cpu"), dtype="int16", tmin=c["tmin"],
        tmax=c["tmax"], batch_downsampling=c["ds"])
    batches, inds = [], []
    for i in range(int(bfile.n_batches)):
        X, ind = bfile.padded_batch_to_torch(i, return_inds=True)
        batches.append(X.cpu().numpy().astype(np.float32))
        inds.append([int(ind[0]), int(ind[1])])
    batches = np.stack(batches)

    info = {
        "file": c["file"],
        "n_chan_bin": c["n_chan_bin"],
        "fs": FS,
        "batch_size": NT,
        "nt": NTW,
        "tmin": c["tmin"],
        "tmax": None if np.isinf(c["tmax"]) else c["tmax"],
        "batch_downsampling": c["ds"],
        "total_samples": int(bfile.total_samples),
        "imin": int(bfile.imin),
        "imax": int(bfile.imax),
        "n_samples": int(bfile.n_samples),
        "n_batches_raw": int(bfile.n_batches_raw),
        "n_batches": int(bfile.n_batches),
        "batch_inds": inds,
    }
    with open(OUT / f"case_{name}.json", "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    if name == "D":
        np.save(OUT / "case_D_batch5.npy", batches[5])
    else:
        np.save(OUT / f"case_{name}_batches.npy", batches)

    # Report: where each batch's data came from, and any zeros.
    summary = {k: v for k, v in info.items() if k != "batch_inds"}
    print(f"case {name}: {summary}")
    for i, X in enumerate(batches):
        ch0 = X[0]
        first = ch0 / 3 if c["n_chan_bin"] == 3 else ch0
        nz = int((X == 0).sum())
        print(f"   batch {i}: inds={inds[i]}  ch0 samples "
              f"{first[0]:.0f}..{first[-1]:.0f}  (col {NTW}: {first[NTW]:.0f})"
              f"  zeros={nz}  max sample read={first.max():.0f}")
    return info, batches


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_inputs()
    for name, c in CASES.items():
        run_case(name, c)


if __name__ == "__main__":
    main()
