#!/usr/bin/env python
# SPDX-License-Identifier: GPL-3.0-or-later
"""Biophysical ground-truth recordings for spike-sorter benchmarking, made with MEArec.

Writes two datasets in the layout of /work/shared/bench/make_gt.py (read by score.py and
run_ks4.py there), to <root>/data/<name>/:

  recording.bin          int16, shape (n_samples, n_chan), C order; int16 = round(GAIN * uV), GAIN = 2
  probe.json             Kilosort4 probe dict: chanMap, xc, yc, kcoords, n_chan
  gt_spike_times.npy     int64 sample of each GT spike's waveform peak (the trough for most units) on its
                         best channel (drift: of the template at the spike's drift position)
  gt_spike_clusters.npy  int64 GT unit id (0..n_units-1), same order as the times
  gt_units.json          per unit: location, peak amplitude (int16 units), best channel, noise std on
                         that channel, SNR, firing rate, n_spikes, cell model and class (E/I)
  meta.json              fs, n_chan, n_samples, duration, dtype, binary, gain, seeds, generator + parameters
  drift_um.npy           (mearec_drift only) realised rigid displacement of all units along the probe
                         (+y), um, at meta.drift.displacement_sampling_frequency

  mearec_static  64-ch Neuropixels-1.0-like layout (the static64 layout of make_gt.py), 60 s, 30 kHz,
                 40 units (28 excitatory, 12 inhibitory layer-5 cell models from the Blue Brain Project,
                 bundled with MEArec), spatially correlated coloured noise (10 uV before MEArec's
                 300-6000 Hz band-pass, 6-7 uV after), no drift
  mearec_drift   the same units, spike trains and noise, with rigid drift along the probe
                 (slow triangular zigzag + random jumps, -20..+14 um)

Templates are simulated with NEURON + LFPy (MEArec's template generator, its cells simulated in
worker processes and morphologies built with pt3d=False: same templates, ~3x faster). The template
library is drifting (each position also simulated along a 40 um path up the probe) and serves both
recordings; the static one uses the middle of each path. It is cached in <root>/mearec/ and reused.

Needs a Python venv with MEArec 1.11, neuron 8.2.7 (NEURON 9 cannot compile the bundled cell
models), LFPy 2.3.6 and a C compiler for nrnivmodl. Usage:

  ~/ks-bench/mearec-venv/bin/python bench/make_mearec.py                   # both sets
  ~/ks-bench/mearec-venv/bin/python bench/make_mearec.py mearec_drift --out /data/bench
  options: --n-per-cell 25 (templates per cell model), --jobs 2, --duration 60, --n-units 40

<root> is --out, else $KS_BENCH_HOME, else ~/ks-bench. The template library (13 x 25 templates)
took 18 min on 2 (shared) cores, the first time only; then about 1 min per recording.
"""
import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

FS = 30000.0
GAIN = 2.0  # int16 units per uV (0.5 uV per bit), as make_gt.py
N_CHAN = 64
PROBE_NAME = "ksbench-np1-64"

# Template library (MEArec template parameters that differ from MEArec's defaults).
DRIFT_UM = 40.0
DRIFT_STEPS = 21  # 2 um apart; the middle one (index 10) is the reference position
TEMPLATE_PARAMS = dict(
    n=25,  # positions per cell model
    seed=4601,
    min_amp=50,  # uV, at the first position of the drift path (MEArec default 30)
    drifting=True,
    min_drift=DRIFT_UM, max_drift=DRIFT_UM, drift_steps=DRIFT_STEPS,
    # every path goes exactly DRIFT_UM um along +z (= up the probe): one rigid drift for all units
    drift_xlim=[0.0, 0.0], drift_ylim=[0.0, 0.0], drift_zlim=[DRIFT_UM, DRIFT_UM],
    check_for_drift_amp=False, drift_within_bounds=False,
)

# Recordings (MEArec recording parameters; all else MEArec defaults).
N_EXC, N_INH = 28, 12  # MEArec's default 7:3 excitatory:inhibitory ratio
# MEArec seeds. With the units given (template_ids), its 'templates' seed only drives the random drift
# jumps; 4630 is one for which slow + fast drift stay on the 40 um template path (checked below).
SEEDS = dict(spiketrains=4611, templates=4630, convolution=4613, noise=4614)
UNIT_SELECTION_SEED = 4612
RECORDING_PARAMS = dict(
    fs=FS,
    dtype="float32",
    noise_level=10.0,  # uV, std of the noise before MEArec's 300-6000 Hz band-pass
    noise_mode="distance-correlated",  # covariance 15 um / distance between contacts
    noise_half_distance=30,
    noise_color=True,  # 300 Hz resonant peak + white floor (MEArec defaults)
    filter=True, filter_cutoff=[300.0, 6000.0], filter_order=3, filter_mode="filtfilt",
    chunk_duration=10,
)
DRIFT_FS = 100.0  # Hz, sampling of the drift signal (MEArec default)
DRIFT_DICTS = [
    # slow triangular zigzag, 24 um peak to peak, 40 s period, from t = 5 s
    dict(drift_fs=DRIFT_FS, drift_mode_probe="rigid", drift_mode_speed="slow", slow_drift_waveform="triangluar",
         slow_drift_amplitude=24.0, slow_drift_velocity=72.0, t_start_drift=5.0),
    # plus random 4-8 um jumps every 12 s
    dict(drift_fs=DRIFT_FS, drift_mode_probe="rigid", drift_mode_speed="fast", fast_drift_period=12.0,
         fast_drift_min_jump=4.0, fast_drift_max_jump=8.0, t_start_drift=0.0),
]

DATASETS = {
    "mearec_static": dict(drifting=False, description=(
        "MEArec biophysical templates (13 BBP layer-5 cell models), 64-ch NP1-like checkerboard, 60 s, "
        f"{N_EXC + N_INH} units ({N_EXC} E, {N_INH} I), distance-correlated coloured noise, no drift")),
    "mearec_drift": dict(drifting=True, description=(
        "as mearec_static (same units, spike trains and noise) with rigid drift along the probe: "
        "slow triangular zigzag (24 um p-p, 40 s period) + random 4-8 um jumps every 12 s, -20..+14 um")),
}


# ----------------------------------------------------------------------------- probe
def probe_np1(n_chan):
    """Neuropixels-1.0-like checkerboard (as make_gt.py's probe_np1): x = 43,11,59,27 um cycling per
    channel, two contacts per row, 20 um row pitch, y = 20 * (ch // 2 + 1)."""
    xs = np.array([43.0, 11.0, 59.0, 27.0])
    i = np.arange(n_chan)
    return np.c_[xs[i % 4], 20.0 * (i // 2 + 1)].astype(float)


def register_probe(pos):
    """Make the layout known to MEAutility by name (MEArec's template workers look it up by name).
    MEAutility puts the probe in the plane x = 0 with its 2-D (x, y) as 3-D (y, z), centred on 0."""
    import yaml
    import MEAutility as mu

    info = dict(electrode_name=PROBE_NAME, sortlist=None, pos=pos.tolist(), plane="yz", shape="square",
                size=6.0, type="mea",
                description=f"{len(pos)}-ch Neuropixels-1.0-like checkerboard (ks-bench static64 layout), "
                            "12 um square contacts")
    if PROBE_NAME in mu.return_mea_list():
        known = mu.return_mea_info(PROBE_NAME)
        if np.allclose(np.asarray(known["pos"], float), pos):
            return
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"{PROBE_NAME}.yaml"
    tmp.write_text(yaml.safe_dump(info))
    mu.add_mea(str(tmp))
    tmp.unlink()


# ----------------------------------------------------------------------------- templates
def _cell_worker(i, cell_dir, params, intra_dir, out_file):
    """One cell model: intracellular simulation, then extracellular templates at random positions.
    Runs in its own process (NEURON keeps global state)."""
    import LFPy
    from MEArec import simulate_cells

    make_cell = LFPy.TemplateCell

    def template_cell_without_pt3d(*args, **kwargs):
        kwargs["pt3d"] = False  # MEArec asks for pt3d=True; templates agree to < 0.1 uV, 3x faster
        return make_cell(*args, **kwargs)

    LFPy.TemplateCell = template_cell_without_pt3d
    t0 = time.time()
    simulate_cells.run_cell_model(cell_dir, sim_folder=intra_dir, save=True, verbose=0, **params)
    eaps, locs, rots = simulate_cells.calc_extracellular(i, cell_dir, intra_dir, save=False, verbose=0, **params)
    np.savez(out_file, eaps=eaps, locs=locs, rots=rots, seconds=time.time() - t0)
    return Path(cell_dir).name, len(eaps), time.time() - t0


def template_library(root, n_per_cell, jobs):
    """Build (or load the cached) drifting template library. Returns (TemplateGenerator, info dict)."""
    import MEArec as mr
    from MEArec.simulate_cells import compile_all_mechanisms

    params = mr.get_default_templates_params()
    params.update(TEMPLATE_PARAMS, n=int(n_per_cell), probe=PROBE_NAME)
    params.pop("templates_folder", None)
    key = hashlib.sha1(json.dumps([params, mr.__version__, PROBE_NAME], sort_keys=True).encode()).hexdigest()[:10]
    work = Path(root) / "mearec"
    lib = work / f"templates_{PROBE_NAME}_n{n_per_cell}_{key}.h5"
    lib_info = lib.with_suffix(".json")
    if lib.exists() and lib_info.exists():
        print(f"[templates] using cached {lib}", flush=True)
        return mr.load_templates(lib, return_h5_objects=False), json.loads(lib_info.read_text())

    # private, compiled copy of MEArec's bundled cell models
    cells_root = work / "cell_models" / "bbp"
    if not (cells_root / "mods" / "x86_64" / ".libs" / "libnrnmech.so").exists() and \
            not (cells_root / "mods" / "x86_64" / "libnrnmech.so").exists():
        src = Path(mr.__file__).parent / "cell_models" / "bbp"  # shipped in the MEArec wheel
        if cells_root.exists():
            shutil.rmtree(cells_root)
        cells_root.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, cells_root, ignore=shutil.ignore_patterns("mods", "__pycache__"))
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        print(f"[templates] compiling NEURON mechanisms in {cells_root / 'mods'}", flush=True)
        compile_all_mechanisms(cells_root)
    cells = sorted(p for p in cells_root.iterdir() if p.is_dir() and p.name.startswith("L"))

    parts = work / f"cells_{key}"
    intra = parts / "intracellular"
    intra.mkdir(parents=True, exist_ok=True)
    (parts / "params.json").write_text(json.dumps(params, indent=1))
    todo = [(i, c) for i, c in enumerate(cells) if not (parts / f"{c.name}.npz").exists()]
    # pyramidal cells are the slowest: start them first
    todo.sort(key=lambda ic: ("PC" not in ic[1].name, ic[0]))
    print(f"[templates] {len(cells)} cell models x {n_per_cell} positions, drifting {DRIFT_UM} um in "
          f"{DRIFT_STEPS} steps; {len(todo)} to simulate with {jobs} workers", flush=True)
    t0 = time.time()
    if todo:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                 max_tasks_per_child=1) as ex:
            futs = [ex.submit(_cell_worker, i, str(c), params, str(intra), str(parts / f"{c.name}.npz"))
                    for i, c in todo]
            for f in futs:
                name, n, s = f.result()
                print(f"[templates]   {name}: {n} templates in {s:.0f} s (elapsed {time.time() - t0:.0f} s)",
                      flush=True)
    templates, locations, rotations, celltypes, cell_seconds = [], [], [], [], {}  # seconds in its worker
    for c in cells:
        d = np.load(parts / f"{c.name}.npz")
        templates.append(d["eaps"])
        locations.append(d["locs"])
        rotations.append(d["rots"])
        celltypes += [c.name] * len(d["eaps"])
        cell_seconds[c.name] = round(float(d["seconds"]), 1)
    import MEAutility as mu
    from MEArec import TemplateGenerator

    tempgen = TemplateGenerator(
        temp_dict=dict(templates=np.concatenate(templates).astype(np.float32), locations=np.concatenate(locations),
                       rotations=np.concatenate(rotations), celltypes=np.array(celltypes)),
        info=dict(params=params, electrodes=mu.return_mea_info(PROBE_NAME)))
    mr.save_template_generator(tempgen, lib, verbose=False)
    info = dict(file=str(lib), n_templates=len(celltypes), n_per_cell=n_per_cell, cell_models=[c.name for c in cells],
                wall_s_this_run=round(time.time() - t0, 1), worker_s_per_cell_model=cell_seconds,
                worker_s_total=round(sum(cell_seconds.values()), 1), workers=jobs,
                mearec_params={k: v for k, v in params.items()})
    lib_info.write_text(json.dumps(info, indent=1))
    print(f"[templates] {len(celltypes)} templates -> {lib} ({time.time() - t0:.0f} s)", flush=True)
    return mr.load_templates(lib, return_h5_objects=False), info


# ----------------------------------------------------------------------------- recordings
def select_units(tempgen, mid, seed, n_exc=N_EXC, n_inh=N_INH):
    """Pick the units once (MEArec's own selection rules and defaults: 25 um apart, 50-300 uV), on the
    reference (middle) templates, so that both recordings hold the same units. Excitatory first, as
    MEArec orders its spike trains."""
    import MEArec as mr
    from MEArec.tools import get_binary_cat, select_templates

    d = mr.get_default_recordings_params()
    cat = get_binary_cat(tempgen.celltypes, d["cell_types"]["excitatory"], d["cell_types"]["inhibitory"])
    np.random.seed(seed)
    ids, sel_cat = select_templates(np.asarray(tempgen.locations)[:, mid], np.asarray(tempgen.templates)[:, mid],
                                    cat, n_exc, n_inh, min_dist=d["templates"]["min_dist"],
                                    min_amp=d["templates"]["min_amp"], max_amp=d["templates"]["max_amp"])
    ids = np.asarray(ids)[np.argsort(np.asarray(sel_cat), kind="stable")]  # 'E' < 'I'
    return ids, cat


def static_tempgen(tempgen, mid):
    """The library at the reference position of each drift path, as a non-drifting library."""
    from MEArec import TemplateGenerator

    info = copy.deepcopy(tempgen.info)
    info["params"]["drifting"] = False
    return TemplateGenerator(temp_dict=dict(templates=np.asarray(tempgen.templates)[:, mid],
                                            locations=np.asarray(tempgen.locations)[:, mid],
                                            rotations=np.asarray(tempgen.rotations),
                                            celltypes=np.asarray(tempgen.celltypes)), info=info)


def bandpass(x, fs, info):
    """MEArec's recording filter applied along axis 0."""
    import quantities as pq
    from MEArec.tools import filter_analog_signals

    r = info["recordings"]
    return filter_analog_signals(x, freq=np.asarray(r["filter_cutoff"]) * pq.Hz, fs=fs * pq.Hz,
                                 filter_type="bandpass", mode=r["filter_mode"], order=r["filter_order"])


def recorded_templates(recgen, drifting):
    """Each unit's templates as they appear in the recording: MEArec's padded, resampled templates,
    averaged over its time-jittered copies, band-passed like the recording, at every drift position.
    Returns the peak |amplitude| per (unit, position, channel) in uV, the best channel, the signed value
    and the sample of the peak on it per (unit, position), relative to MEArec's spike time."""
    t = np.asarray(recgen.templates)  # static (units, jitters, chan, samples); drift (units, positions, ...)
    if not drifting:
        t = t[:, None]
    n_units, n_pos, _, n_chan, n_s = t.shape
    tp = recgen.info["templates"]
    frac = (tp["pad_len"][0] + tp["cut_out"][0]) / (np.sum(tp["pad_len"]) + np.sum(tp["cut_out"]))
    pre = int(frac * n_s)  # MEArec's convolution puts this template sample on the spike time
    pad = int(0.05 * FS)
    amp = np.zeros((n_units, n_pos, n_chan))
    best = np.zeros((n_units, n_pos), int)
    offset = np.zeros((n_units, n_pos), int)
    peak = np.zeros((n_units, n_pos))
    for u in range(n_units):
        for q in range(n_pos):
            x = np.zeros((n_s + 2 * pad, n_chan))
            x[pad:pad + n_s] = np.asarray(t[u, q], dtype=np.float64).mean(axis=0).T
            if recgen.info["recordings"]["filter"]:
                x = bandpass(x, FS, recgen.info)
            x = x[pad:pad + n_s]
            amp[u, q] = np.abs(x).max(axis=0)
            c = int(amp[u, q].argmax())
            k = int(np.abs(x[:, c]).argmax())
            best[u, q], offset[u, q], peak[u, q] = c, k - pre, x[k, c]
    return amp, best, offset, peak


def spike_positions(recgen, u, samples, n_pos):
    """Drift-path index of the template MEArec used for each spike of unit u (as its convolution)."""
    from MEArec.tools import compute_drift_idxs_from_drift_list

    idx = compute_drift_idxs_from_drift_list(u, samples, recgen.drift_list, recgen.fs).astype(int)
    assert idx.max() <= n_pos - 1, "drift ran off the template drift path"
    return idx


def realised_drift(recgen, n_samples, mid):
    """Rigid displacement (um, +y of the probe) of the templates MEArec used, at the drift signal's rate:
    the same index arithmetic as its convolution (compute_drift_idxs_from_drift_list + clipping)."""
    from MEArec.tools import compute_drift_idxs_from_drift_list

    locs = np.asarray(recgen.template_locations)  # (units, steps, 3)
    dfs = float(recgen.drift_list[0]["drift_fs"])
    n = int(np.ceil(n_samples / FS * dfs))
    frames = (np.arange(n) + 0.5) / dfs * FS
    idx = compute_drift_idxs_from_drift_list(0, frames, recgen.drift_list, FS).astype(int)
    # MEArec keeps the index in uint16 and clips it to the path: make sure nothing was clipped
    assert idx.max() <= locs.shape[1] - 1, "drift ran off the template drift path"
    idx = np.clip(idx, 0, locs.shape[1] - 1)
    z = locs[:, :, 2] - locs[:, mid:mid + 1, 2]  # (units, steps) offsets along the probe
    assert np.allclose(z, z[:1]), "drift paths differ between units"
    assert np.allclose(locs[:, :, :2], locs[:, :1, :2]), "drift paths leave the probe axis"
    return z[0][idx].astype(np.float32), dfs


def write_int16(x, path, chunk=int(FS)):
    n, nclip, lo, hi = x.shape[0], 0, 0, 0
    with open(path, "wb") as f:
        for s in range(0, n, chunk):
            y = np.rint(np.asarray(x[s:s + chunk], dtype=np.float64) * GAIN)
            nclip += int(np.sum((y > 32767) | (y < -32768)))
            lo, hi = min(lo, y.min()), max(hi, y.max())
            f.write(np.ascontiguousarray(np.clip(y, -32768, 32767).astype(np.int16)).tobytes())
    assert Path(path).stat().st_size == n * x.shape[1] * 2
    return nclip, int(lo), int(hi)


def noise_std(data, st, half_width):
    """Per-channel std (int16 units) of the recording away from every GT spike (+-half_width samples),
    and the MAD estimate (median |x| / 0.6745) over all samples."""
    data = np.asarray(data)
    keep = np.ones(data.shape[0], bool)
    for d in range(-half_width, half_width + 1):
        i = st + d
        keep[i[(i >= 0) & (i < keep.size)]] = False
    sd = np.array([data[keep, c].astype(np.float64).std() for c in range(data.shape[1])])
    mad = np.array([np.median(np.abs(data[:, c].astype(np.float64))) / 0.6745 for c in range(data.shape[1])])
    return sd, mad, float(keep.mean())


def make_dataset(name, cfg, tempgen, lib_info, ids, out_root, duration, tmp_root):
    import MEArec as mr

    drifting = cfg["drifting"]
    mid = DRIFT_STEPS // 2
    out = Path(out_root) / "data" / name
    out.mkdir(parents=True, exist_ok=True)
    pos = probe_np1(N_CHAN)
    center = pos.mean(axis=0)  # MEAutility centres the probe on (y, z) = (0, 0)
    t0 = time.time()
    print(f"[{name}] generating ({'drifting' if drifting else 'static'}, {duration} s, {len(ids)} units)", flush=True)

    params = mr.get_default_recordings_params()
    params["spiketrains"].update(duration=float(duration))
    params["recordings"].update(RECORDING_PARAMS, drifting=drifting)
    params["seeds"].update(SEEDS)
    tg = tempgen if drifting else static_tempgen(tempgen, mid)
    tmp = Path(tmp_root) / f"tmp_{name}"
    recgen = mr.gen_recordings(params=copy.deepcopy(params), tempgen=tg, template_ids=np.array(ids),
                               tmp_mode="memmap", tmp_folder=tmp, n_jobs=0, verbose=1,
                               drift_dicts=copy.deepcopy(DRIFT_DICTS) if drifting else None)
    gen_s = time.time() - t0
    n_samples = int(recgen.recordings.shape[0])
    n_units = len(recgen.spiketrains)
    assert n_units == len(ids) and np.array_equal(np.asarray(recgen.template_ids), ids)

    # ---- templates as recorded: best channel, peak sample, amplitude
    amp_p, best_p, offset_p, peak_p = recorded_templates(recgen, drifting)
    ref = mid if drifting else 0  # reference position (displacement 0)
    amp, best = amp_p[:, ref], best_p[:, ref]

    # ---- GT spikes: MEArec's own spike-time -> sample conversion, moved to the peak of the waveform on
    # the best channel of the template used for that spike (drift: the template at the spike's position)
    times, clus, spike_best, spike_off, spike_q = [], [], [], [], []
    for u, tr in enumerate(recgen.spiketrains):
        s = (tr.times * recgen.fs).magnitude.astype("int")
        q = spike_positions(recgen, u, s, amp_p.shape[1]) if drifting else np.zeros(s.size, int)
        times.append((s + offset_p[u, q]).astype(np.int64))
        clus.append(np.full(s.size, u, np.int64))
        spike_best.append(best_p[u, q])
        spike_off.append(offset_p[u, q])
        spike_q.append(q)
    st, sc = np.concatenate(times), np.concatenate(clus)
    spike_best, spike_off, spike_q = np.concatenate(spike_best), np.concatenate(spike_off), np.concatenate(spike_q)
    order = np.lexsort((sc, st))
    st, sc, spike_best, spike_off, spike_q = st[order], sc[order], spike_best[order], spike_off[order], spike_q[order]
    assert st.min() >= 0 and st.max() < n_samples
    np.save(out / "gt_spike_times.npy", st)
    np.save(out / "gt_spike_clusters.npy", sc)

    ks_probe = dict(chanMap=list(range(N_CHAN)), xc=[float(v) for v in pos[:, 0]],
                    yc=[float(v) for v in pos[:, 1]], kcoords=[0.0] * N_CHAN, n_chan=N_CHAN)
    (out / "probe.json").write_text(json.dumps(ks_probe))

    print(f"[{name}] writing recording.bin", flush=True)
    nclip, lo, hi = write_int16(recgen.recordings, out / "recording.bin")
    data = np.fromfile(out / "recording.bin", dtype=np.int16).reshape(n_samples, N_CHAN)
    sd, mad, kept = noise_std(data, st, half_width=int(1e-3 * FS))

    # check: the mean recorded waveform around the GT times, on the spikes' best channel, peaks at the GT
    # sample (spikes grouped by best channel, which changes along the drift path)
    sta_off = np.zeros(st.size, int)
    for u in range(n_units):
        for c in np.unique(spike_best[sc == u]):
            m = (sc == u) & (spike_best == c) & (st > 10) & (st < n_samples - 10)
            w = np.array([data[st[m] + d, c].astype(np.float64).mean() for d in range(-5, 6)])
            sta_off[m] = int(np.abs(w).argmax()) - 5
    sta_hist = {int(k): int(v) for k, v in zip(*np.unique(sta_off, return_counts=True))}

    # ---- drift
    drift_meta = "none"
    if drifting:
        disp, dfs = realised_drift(recgen, n_samples, mid)
        np.save(out / "drift_um.npy", disp)
        drift_meta = dict(
            rigid=True, direction="vertical (+y, along the probe): positive = units move to larger y",
            displacement_sampling_frequency=dfs, displacement_file="drift_um.npy",
            displacement_convention="drift_um[k] applies to spikes with k <= t * fs_drift < k + 1; "
                                    "gt_units locations are at displacement 0",
            min_um=float(disp.min()), max_um=float(disp.max()), peak_to_peak_um=float(disp.max() - disp.min()),
            template_drift_path_um=DRIFT_UM, template_drift_steps=DRIFT_STEPS,
            template_step_um=DRIFT_UM / (DRIFT_STEPS - 1),
            mearec_drift_dicts=DRIFT_DICTS)

    # ---- per-unit table
    locs = np.asarray(recgen.template_locations)
    loc = locs[:, mid] if drifting else locs
    counts = np.bincount(sc, minlength=n_units)
    n_exc = sum(tr.annotations.get("bintype") == "E" for tr in recgen.spiketrains)
    units = []
    for u, tr in enumerate(recgen.spiketrains):
        c = int(best[u])
        a = float(amp[u, c] * GAIN)
        units.append(dict(
            unit_id=u, x_um=float(loc[u, 1] + center[0]), y_um=float(loc[u, 2] + center[1]),
            z_um=float(loc[u, 0]), best_channel=c, best_channel_y_um=float(pos[c, 1]),
            peak_amp_int16=a, noise_std_int16=float(sd[c]), snr=a / float(sd[c]),
            n_spikes=int(counts[u]), firing_rate_hz=float(counts[u] / duration),
            cell_type=str(recgen.template_celltypes[u]), cell_class=str(tr.annotations.get("bintype", "")),
            peak_sign=int(np.sign(peak_p[u, ref])), peak_offset_from_mearec_spike_samples=int(offset_p[u, ref]),
            **(dict(best_channels_over_drift=sorted(set(spike_best[sc == u].tolist())),
                    peak_offsets_over_drift_samples=sorted(set(spike_off[sc == u].tolist())),
                    peak_amp_int16_range_over_drift=[float(f(amp_p[u, np.unique(spike_q[sc == u])].max(axis=1)) * GAIN)
                                                     for f in (np.min, np.max)])
               if drifting else {}),
            raw_template_amp_uV=float(np.abs(np.asarray(tempgen.templates)[ids[u], mid]).max()),
            mearec_template_id=int(ids[u])))
    (out / "gt_units.json").write_text(json.dumps(units, indent=1))

    snr = np.array([u["snr"] for u in units])
    meta = dict(
        name=name, description=cfg["description"], fs=FS, n_chan=N_CHAN, n_samples=n_samples,
        duration_s=float(duration), dtype="int16",
        layout="time-major interleaved, shape (n_samples, n_chan), C order", binary="recording.bin",
        int16_per_uV=GAIN, uV_per_bit=1.0 / GAIN, int16_per_generator_unit=GAIN,
        scaling_note="int16 = round(GAIN * x_uV); MEArec traces are in uV, already band-passed 300-6000 Hz",
        clipped_samples=nclip, int16_min=lo, int16_max=hi,
        seed=SEEDS["spiketrains"], seeds=dict(SEEDS, unit_selection=UNIT_SELECTION_SEED,
                                              template_library=TEMPLATE_PARAMS["seed"]),
        n_units=n_units, n_gt_spikes=int(st.size),
        n_units_snr_ge_5=int((snr >= 5).sum()), n_units_snr_ge_3=int((snr >= 3).sum()),
        probe=f"{N_CHAN}-ch Neuropixels-1-like checkerboard: x=[43,11,59,27] um cycling per channel, 2 contacts "
              "per row, 20 um row pitch (y = 20*(ch//2+1)), 12 um square contacts (make_gt.py static64 layout)",
        probe_file="probe.json",
        noise=dict(model=f"MEArec {RECORDING_PARAMS['noise_mode']} (cov = 0.5*{RECORDING_PARAMS['noise_half_distance']}"
                         " um / distance), coloured (noise_color), std "
                         f"{RECORDING_PARAMS['noise_level']} uV before the 300-6000 Hz band-pass",
                   per_channel_std_int16=[round(float(v), 3) for v in sd],
                   per_channel_mad_std_int16=[round(float(v), 3) for v in mad],
                   std_estimate=f"std of each channel away from +-1 ms of every GT spike ({kept:.0%} of samples)"),
        templates=dict(library=lib_info.get("file"), n_templates_in_library=lib_info.get("n_templates"),
                       cell_models=lib_info.get("cell_models"),
                       selection="MEArec select_templates on the reference (middle) drift position: min_dist 25 um, "
                                 f"50 < raw amplitude < 300 uV, {n_exc} E + {n_units - n_exc} I",
                       spike_time_convention=(
                           "gt_spike_times = sample of the peak (largest |value|; the trough for most units) of the "
                           "unit's mean band-passed template on its best channel"
                           + (", using for each spike the template at its drift position" if drifting else "")
                           + "; i.e. MEArec's spike sample + peak_offset_from_mearec_spike_samples. MEArec jitters "
                           "each spike by a random sub-sample shift (" + ("0..+1" if drifting else "-0.5..+0.5")
                           + " sample)"),
                       check_sta_peak_offset_samples_histogram=sta_hist,
                       check_note="peak of the mean recorded waveform (spikes grouped by unit and best channel) "
                                  "relative to the GT time: samples -> number of spikes",
                       amplitude_note="peak_amp_int16 from the mean recorded template (band-passed, at the "
                                      "reference drift position); MEArec modulates each spike by ~N(1, 0.05) per channel"),
        spike_trains=dict(process="Poisson with 2 ms refractory period (MEArec defaults)",
                          excitatory_rate_hz="N(5, 1), min 0.5", inhibitory_rate_hz="N(15, 3), min 0.5",
                          n_exc=n_exc, n_inh=n_units - n_exc),
        drift=drift_meta,
        generator="MEArec.gen_recordings (biophysical templates: NEURON + LFPy, BBP layer-5 cell models)",
        versions=_versions(),
        generator_kwargs=dict(recording_params=json.loads(json.dumps(recgen.info, default=_jsonable)),
                              template_params=lib_info.get("mearec_params")),
        template_library_generation=dict(wall_s=lib_info.get("wall_s_this_run"), workers=lib_info.get("workers"),
                                         worker_s_total=lib_info.get("worker_s_total")),
        generation_seconds=round(gen_s, 1),
    )
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    del data, recgen
    shutil.rmtree(tmp, ignore_errors=True)

    q = np.percentile(snr, [0, 25, 50, 75, 100])
    print(f"[{name}] done in {time.time() - t0:.1f} s (MEArec {gen_s:.1f} s): {st.size} spikes, {n_units} units, "
          f"SNR>=5 {meta['n_units_snr_ge_5']}/{n_units}, SNR min/q1/med/q3/max "
          f"{' / '.join(f'{v:.1f}' for v in q)}", flush=True)
    print(f"[{name}] int16 range [{lo}, {hi}], clipped {nclip}; noise std (int16) "
          f"{sd.min():.1f}-{sd.max():.1f}, MAD {mad.min():.1f}-{mad.max():.1f}", flush=True)
    print(f"[{name}] GT time - MEArec spike time (samples): "
          f"{dict(zip(*[v.tolist() for v in np.unique(spike_off, return_counts=True)]))}; check, peak of the mean "
          f"recorded waveform relative to the GT time (samples: spikes): {sta_hist}", flush=True)
    print(f"[{name}] SNR per unit: {' '.join(f'{v:.1f}' for v in snr)}", flush=True)
    if drifting:
        print(f"[{name}] drift {drift_meta['min_um']:.1f} .. {drift_meta['max_um']:.1f} um", flush=True)
    return meta


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist() if o.size <= 64 else f"<array shape={o.shape}>"
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    return str(o)


def _versions():
    import importlib.metadata as md

    v = {}
    for p in ("MEArec", "MEAutility", "neuron", "LFPy", "numpy", "scipy", "h5py"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    v["python"] = sys.version.split()[0]
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=list(DATASETS), help=f"datasets ({', '.join(DATASETS)})")
    ap.add_argument("--out", default=os.environ.get("KS_BENCH_HOME", str(Path.home() / "ks-bench")),
                    help="output root: data/<name>/ and the template cache mearec/ go there")
    ap.add_argument("--n-per-cell", type=int, default=TEMPLATE_PARAMS["n"], help="template positions per cell model")
    ap.add_argument("--jobs", type=int, default=2, help="parallel cell-model simulations")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds")
    ap.add_argument("--n-units", type=int, default=N_EXC + N_INH, help="units (70%% excitatory)")
    a = ap.parse_args(argv)
    for n in a.names:
        if n not in DATASETS:
            sys.exit(f"unknown dataset {n}")
    import MEArec as mr

    mr.get_default_config()  # creates MEArec's config folder once, before any worker
    register_probe(probe_np1(N_CHAN))
    t0 = time.time()
    tempgen, lib_info = template_library(a.out, a.n_per_cell, a.jobs)
    print(f"[templates] ready in {time.time() - t0:.0f} s: {len(tempgen.celltypes)} templates, "
          f"shape {np.asarray(tempgen.templates).shape}", flush=True)
    n_exc = int(round(0.7 * a.n_units))
    ids, _ = select_units(tempgen, DRIFT_STEPS // 2, UNIT_SELECTION_SEED, n_exc, a.n_units - n_exc)
    for n in a.names:
        make_dataset(n, DATASETS[n], tempgen, lib_info, ids, a.out, a.duration, Path(a.out) / "mearec")


if __name__ == "__main__":
    main()
