"""Draws docs/img/sim_waveforms.png: mean waveforms of four simulated units on their nearest
channels, and a stretch of high-passed data.

    target/release/kilosort-rs simulate /tmp/sim64 --preset np1-64 --duration 30 --overwrite
    ~/ks-bench/.venv/bin/python docs/img/plot_sim_waveforms.py /tmp/sim64
"""
import json
import sys

import matplotlib
import numpy as np
from scipy.signal import butter, sosfiltfilt

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

folder = sys.argv[1]
meta = json.load(open(f"{folder}/simulation.json"))
n_chan, uv = meta["n_chan_bin"], meta["uv_per_bit"]
data = np.fromfile(f"{folder}/recording.bin", dtype=np.int16).reshape(-1, n_chan).astype(np.float32) * uv
units = [u for u in json.load(open(f"{folder}/gt_units.json")) if not u["is_distractor"]]
probe = json.load(open(f"{folder}/probe.json"))
xc, yc = np.array(probe["xc"]), np.array(probe["yc"])
times, labels = np.load(f"{folder}/gt_spike_times.npy"), np.load(f"{folder}/gt_spike_clusters.npy")

fig, axes = plt.subplots(1, 5, figsize=(17, 6), gridspec_kw=dict(width_ratios=[1, 1, 1, 1, 2.2]))
for ax, unit in zip(axes[:4], sorted(units, key=lambda u: -u["snr"])[::6][:4]):
    own = times[labels == unit["unit_id"]]
    own = own[(own > 60) & (own < len(data) - 60)][:300]
    best = unit["best_channel"]
    for ch in np.argsort(np.hypot(xc - xc[best], yc - yc[best]))[:12]:
        mean = np.mean([data[t - 30 : t + 60, ch] for t in own], axis=0)
        mean -= np.median(mean[:10])
        ax.plot((np.arange(90) - 30) / 30 + xc[ch] / 12, mean / 4 + yc[ch], lw=1)
    kind = "narrow" if unit["narrow"] else "broad"
    ax.set_title(f"unit {unit['unit_id']} ({kind})\nSNR {unit['snr']:.1f}, {unit['rate_hz']:.1f} Hz", fontsize=10)
    ax.set_xlabel("time (ms) / lateral position")
    ax.set_ylabel("depth (µm); 4 µV per µm")
sos = butter(3, 300, btype="high", fs=30000, output="sos")
stretch = sosfiltfilt(sos, data[30000:36000, :], axis=0)
for ch in range(0, min(64, n_chan), 2):
    axes[4].plot(np.arange(6000) / 30, stretch[:, ch] + ch * 25, lw=0.4, color="k")
axes[4].set_title("0.2 s of every other channel (high-passed, 25 µV per channel)", fontsize=10)
axes[4].set_xlabel("ms")
plt.tight_layout()
plt.savefig("docs/img/sim_waveforms.png", dpi=80)
