#!/usr/bin/env python
"""Make the fixtures that check `groundtruth::compare` against SpikeInterface itself.

Run from the repository root (needs the benchmark venv: spikeinterface 0.105, scipy, kilosort):

    ~/ks-bench/.venv/bin/python tests/data/compare/make_compare_fixtures.py

Deterministic (fixed seeds).  Writes, next to this script:

  gt/                 shared ground truth: gt_spike_times.npy (int64), gt_spike_clusters.npy (int64),
                      meta.json {"fs": 30000.0, ...} (the layout /work/shared/bench/make_gt.py writes)
  gt_conflict/        a second, small ground truth with synchronous spikes and intra-unit doublets
  <case>/             one sorting per case, Phy style: spike_times.npy + spike_clusters.npy (or
                      spike_templates.npy), in varied dtypes/shapes, sometimes params.py
  <case>/expected.json  what spikeinterface.comparison.compare_sorter_to_ground_truth reports
                      (called exactly like /work/shared/bench/score.py) plus Kilosort's bench.py score
  hungarian.json      small tie-heavy matrices and scipy.optimize.linear_sum_assignment(-m) on them

Every sorting is compared the way score.py does it: NumpySorting.from_samples_and_labels on int64
arrays, delta_time, exhaustive_gt=True, match_score=0.5, well_detected_score=0.8,
redundant_score=0.2, overmerged_score=0.2, chance_score=0.1, match_mode="hungarian".
"""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent
FS = 30000.0
DURATION_S = 30.0


# ----------------------------------------------------------------------------- ground truths
def poisson_train(rng, rate, n_samples, refractory):
    n = rng.poisson(rate * n_samples / FS)
    t = np.sort(rng.choice(n_samples, size=n, replace=False))
    keep = np.r_[True, np.diff(t) > refractory]
    return t[keep]


def make_main_gt():
    """15 units, 1.5-4 Hz, 2 ms refractory; unit 13 fires 0-8 samples after 25 spikes of unit 12
    (cross-unit conflicts); unit 14 has 12 doublets with a 5-sample ISI (intra-unit conflicts)."""
    rng = np.random.default_rng(1234)
    n_samples = int(DURATION_S * FS)
    times, labels = [], []
    trains = {}
    for u in range(15):
        trains[u] = poisson_train(rng, rng.uniform(1.5, 4.0), n_samples - 100, 60) + 50
    sync = rng.choice(trains[12], size=25, replace=False) + rng.integers(0, 9, size=25)
    trains[13] = np.unique(np.r_[trains[13], sync])
    doub = rng.choice(trains[14], size=12, replace=False) + 5
    trains[14] = np.unique(np.r_[trains[14], doub])
    for u, t in trains.items():
        times.append(t)
        labels.append(np.full(t.size, u))
    st = np.concatenate(times).astype(np.int64)
    sc = np.concatenate(labels).astype(np.int64)
    order = np.lexsort((sc, st))
    return st[order], sc[order]


def make_conflict_gt():
    """4 units built for matching conflicts: unit 0 and 1 fire in near-synchrony (1-10 samples
    apart) 40 times, unit 2 has bursts of 3 spikes 4 samples apart, unit 3 is ordinary."""
    rng = np.random.default_rng(99)
    n_samples = int(10 * FS)
    base = np.sort(rng.choice(np.arange(100, n_samples - 100, 400), size=40, replace=False))
    u0 = base
    u1 = base + rng.integers(1, 11, size=base.size)
    b = np.sort(rng.choice(np.arange(200, n_samples - 200, 700), size=20, replace=False))
    u2 = np.sort(np.r_[b, b + 4, b + 8])
    u3 = poisson_train(rng, 5.0, n_samples - 100, 60) + 50
    st = np.r_[u0, u1, u2, u3].astype(np.int64)
    sc = np.r_[np.zeros(u0.size), np.ones(u1.size), np.full(u2.size, 2), np.full(u3.size, 3)].astype(np.int64)
    order = np.lexsort((sc, st))
    return st[order], sc[order], n_samples


def write_gt(name, st, sc, fs, n_samples):
    d = HERE / name
    d.mkdir(exist_ok=True)
    np.save(d / "gt_spike_times.npy", st.astype(np.int64))
    np.save(d / "gt_spike_clusters.npy", sc.astype(np.int64))
    meta = dict(name=name, fs=fs, n_samples=int(n_samples), n_units=int(np.unique(sc).size),
                n_gt_spikes=int(st.size), note="fixture for groundtruth::compare tests")
    (d / "meta.json").write_text(json.dumps(meta, indent=1))


# ----------------------------------------------------------------------------- scoring with SI
def si_compare(gt_st, gt_sc, st, sc, fs, delta_ms):
    from spikeinterface.core import NumpySorting
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    gt = NumpySorting.from_samples_and_labels([gt_st], [gt_sc], fs)
    tested = NumpySorting.from_samples_and_labels([st], [sc], fs)
    comp = compare_sorter_to_ground_truth(gt, tested, delta_time=delta_ms, exhaustive_gt=True,
                                          match_score=0.5, well_detected_score=0.8, redundant_score=0.2,
                                          overmerged_score=0.2, chance_score=0.1, match_mode="hungarian")
    return comp


def ks_scores(gt_st, gt_sc, st, sc, dt):
    """Kilosort bench.py match_neuron against *all* sorted clusters (yclu all zero, n_check = all),
    score = 1 - fpos - fmiss; units bench.py skips (ValueError) are reported as 0."""
    from kilosort.bench import match_neuron

    gt_ids, gt_idx = np.unique(gt_sc, return_inverse=True)
    s_ids, s_idx = np.unique(sc, return_inverse=True)
    o = np.argsort(st, kind="stable")
    st_s, s_idx = st[o], s_idx[o]
    out = []
    for kk in range(gt_ids.size):
        if s_ids.size == 0:
            out.append(0.0)
            continue
        try:
            fmax, miss, fpos, *_ = match_neuron(kk, gt_idx, np.zeros(gt_ids.size), gt_st, s_idx,
                                                np.zeros(s_ids.size), st_s, n_check=s_ids.size, dt=dt)
            out.append(float(1 - fpos - miss))
        except ValueError:
            out.append(0.0)
    return out


def median_lag(gt_st, gt_sc, st, sc, match12, window):
    """Copied logic of score.py median_lag (this is the reference we test against)."""
    lags = []
    for g, s in match12.items():
        if s == -1:
            continue
        a = np.sort(gt_st[gt_sc == int(g)])
        b = np.sort(st[sc == int(s)])
        if a.size == 0 or b.size == 0:
            continue
        i = np.clip(np.searchsorted(b, a), 1, b.size - 1) if b.size > 1 else np.zeros(a.size, int)
        cand = np.stack([b[np.maximum(i - 1, 0)], b[i]], axis=1) - a[:, None]
        d = cand[np.arange(a.size), np.argmin(np.abs(cand), axis=1)]
        lags.append(d[np.abs(d) <= window])
    if not lags:
        return None
    lags = np.concatenate(lags)
    return float(np.median(lags)) if lags.size else None


def summarize(acc, rec, pre):
    matched = acc > 0
    return dict(
        n_gt_units=int(acc.size),
        n_acc_ge_0_8=int((acc >= 0.8).sum()), n_acc_ge_0_5=int((acc >= 0.5).sum()),
        accuracy_mean=float(acc.mean()) if acc.size else None,
        accuracy_median=float(np.median(acc)) if acc.size else None,
        recall_mean=float(rec.mean()) if rec.size else None,
        recall_median=float(np.median(rec)) if rec.size else None,
        precision_mean=float(pre.mean()) if pre.size else None,
        precision_median=float(np.median(pre)) if pre.size else None,
        precision_mean_matched=float(pre[matched].mean()) if matched.any() else None,
    )


def ints(a):
    return [int(x) for x in a]


def expected(name, description, gt_dir, gt_st, gt_sc, st, sc, fs, delta_ms, files):
    comp = si_compare(gt_st, gt_sc, st, sc, fs, delta_ms)
    g_ids = ints(comp.unit1_ids)
    s_ids = ints(comp.unit2_ids)
    perf = comp.get_performance(method="by_unit")
    cs = comp.count_score
    h12 = [int(comp.hungarian_match_12[g]) for g in comp.unit1_ids]
    b12 = [int(comp.best_match_12[g]) for g in comp.unit1_ids]
    b21 = [int(comp.best_match_21[s]) for s in comp.unit2_ids]
    acc = perf["accuracy"].astype(float).values
    rec = perf["recall"].astype(float).values
    pre = perf["precision"].astype(float).values
    ks_dt = int(round(0.2 * fs / 1000))
    ks = ks_scores(gt_st, gt_sc, st, sc, ks_dt)
    out = dict(
        case=name, description=description, gt_dir=gt_dir, files=files,
        fs=fs, delta_ms=delta_ms, delta_frames=int(comp.delta_frames), ks_delta_frames=ks_dt,
        n_gt_spikes=int(gt_st.size), n_sorted_spikes=int(st.size),
        gt_unit_ids=g_ids, sorted_unit_ids=s_ids,
        event_counts1=ints(comp.event_counts1.values), event_counts2=ints(comp.event_counts2.values),
        match_counts=[ints(r) for r in np.asarray(comp.match_event_count.values)],
        agreement=[[float(x) for x in r] for r in np.asarray(comp.agreement_scores.values, float)],
        hungarian_match_12=h12, best_match_12=b12, best_match_21=b21,
        tp=ints(cs["tp"].values), fn=ints(cs["fn"].values), fp=ints(cs["fp"].values),
        accuracy=[float(x) for x in acc], recall=[float(x) for x in rec], precision=[float(x) for x in pre],
        false_discovery_rate=[float(x) for x in perf["false_discovery_rate"].astype(float).values],
        miss_rate=[float(x) for x in perf["miss_rate"].astype(float).values],
        well_detected_ids=ints(comp.get_well_detected_units(0.8)),
        false_positive_ids=ints(comp.get_false_positive_units()),
        redundant_ids=ints(comp.get_redundant_units()),
        overmerged_ids=ints(comp.get_overmerged_units()),
        bad_ids=ints(comp.get_bad_units()),
        well_detected=int(comp.count_well_detected_units(0.8)),
        false_positive_units=int(comp.count_false_positive_units()),
        redundant=int(comp.count_redundant_units()),
        overmerged=int(comp.count_overmerged_units()),
        bad_units=int(comp.count_bad_units()),
        all_gt=summarize(acc, rec, pre),
        # exact bits of the summary floats (serde_json's default parser may be 1 ulp off)
        all_gt_bits={k: (None if v is None else int(np.float64(v).view(np.uint64)))
                     for k, v in summarize(acc, rec, pre).items() if not k.startswith("n_")},
        median_lag_samples=median_lag(gt_st, gt_sc, st, sc, dict(zip(g_ids, h12)),
                                      window=int(round(delta_ms * fs / 1000))),
        ks_score=ks, ks_correct=int((np.array(ks) >= 0.8).sum()),
    )
    return out


# ----------------------------------------------------------------------------- sortings
def case_sortings(gt_st, gt_sc):
    """Yield (name, description, st, sc, fs, delta_ms)."""
    rng = np.random.default_rng(777)
    n = gt_st.size
    units = np.unique(gt_sc)

    perm = rng.permutation(units.size)
    yield ("exact", "GT copied, unit ids relabelled 100+permutation",
           gt_st.copy(), 100 + perm[np.searchsorted(units, gt_sc)], FS, 0.4)

    r = rng.random(n)
    jit = rng.integers(-9, 10, size=n)
    jit[(r > 0.7) & (r <= 0.8)] = rng.choice([-12, 12], size=((r > 0.7) & (r <= 0.8)).sum())
    jit[(r > 0.8) & (r <= 0.9)] = rng.choice([-13, 13], size=((r > 0.8) & (r <= 0.9)).sum())
    far = r > 0.9
    jit[far] = rng.choice([-1, 1], size=far.sum()) * rng.integers(14, 31, size=far.sum())
    yield ("jitter", "times jittered: 70% within +-9 samples, 10% exactly +-12 (=0.4 ms, matched), "
           "10% exactly +-13, 10% 14-30 samples", gt_st + jit, gt_sc.copy(), FS, 0.4)

    sc = gt_sc.copy()
    for u, new, frac in ((0, 50, 0.3), (1, 51, 0.5), (2, 52, 0.15)):
        m = (gt_sc == u) & (rng.random(n) < frac)
        sc[m] = new
    yield ("split", "GT units 0,1,2 split 70/30, 50/50, 85/15 into two sorted units", gt_st.copy(), sc, FS, 0.4)

    sc = gt_sc.copy()
    sc[np.isin(gt_sc, [3, 4])] = 3
    sc[np.isin(gt_sc, [5, 6, 7])] = 5
    m = (gt_sc == 9) & (rng.random(n) < 0.5)
    sc[m] = 8
    yield ("merge", "GT 3+4 merged, 5+6+7 merged, half of 9 merged into 8", gt_st.copy(), sc, FS, 0.4)

    sts, scs = [], []
    for u in units:
        t = gt_st[gt_sc == u]
        keep = rng.random(t.size) < rng.uniform(0.5, 1.0)
        nfp = int(rng.uniform(0.0, 0.6) * t.size)
        fp = rng.integers(0, int(DURATION_S * FS), size=nfp)
        tt = np.r_[t[keep] + rng.integers(-6, 7, size=keep.sum()), fp]
        sts.append(tt)
        scs.append(np.full(tt.size, u + 10))
    # deliberately left grouped by unit (not time sorted): SI sorts stably by time
    yield ("miss_fp", "each unit keeps 50-100% of its spikes (+-6 jitter) plus 0-60% random false "
           "positives; spikes not time sorted", np.concatenate(sts), np.concatenate(scs), FS, 0.4)

    keep = rng.random(n) < 0.9
    sts, scs = [gt_st[keep]], [gt_sc[keep]]
    for k in range(8):
        tt = rng.integers(0, int(DURATION_S * FS), size=int(rng.uniform(1, 20) * DURATION_S))
        sts.append(tt)
        scs.append(np.full(tt.size, 200 + k))
    t10 = gt_st[gt_sc == 10]
    sts.append(t10[rng.random(t10.size) < 0.3]); scs.append(np.full(sts[-1].size, 300))
    t9 = gt_st[gt_sc == 9]
    sts.append(t9[rng.random(t9.size) < 0.15]); scs.append(np.full(sts[-1].size, 301))
    t11, t12 = gt_st[gt_sc == 11], gt_st[gt_sc == 12]
    om = np.r_[t11[rng.random(t11.size) < 0.45], t12[rng.random(t12.size) < 0.45]]
    sts.append(om); scs.append(np.full(om.size, 302))
    yield ("noise_units", "90% of GT kept, 8 Poisson noise units, a 30% partial copy of unit 10 "
           "(redundant), a 15% copy of unit 9 (false positive), 45%+45% of units 11+12 (overmerged)",
           np.concatenate(sts), np.concatenate(scs), FS, 0.4)

    yield ("empty", "no sorted spikes at all", np.zeros(0, np.int64), np.zeros(0, np.int64), FS, 0.4)

    st, sc = gt_st.copy(), gt_sc.copy()
    st[sc == 1] += 30
    st[sc == 2] += 12
    st[sc == 3] += 13
    keep = sc != 0
    yield ("zero_match", "unit 0 absent, unit 1 shifted 30 samples (no match), unit 2 shifted 12 "
           "(all match), unit 3 shifted 13 (none)", st[keep], sc[keep], FS, 0.4)

    yield ("shuffled", "GT times, labels randomly permuted across spikes", gt_st.copy(),
           rng.permutation(gt_sc), FS, 0.4)

    st, sc = [gt_st], [gt_sc]
    for u, new in ((4, 40), (5, 41), (5, 42)):
        st.append(gt_st[gt_sc == u]); sc.append(np.full((gt_sc == u).sum(), new))
    yield ("ties", "GT unit 4 twice (ids 4, 40), unit 5 three times (5, 41, 42): equal agreements",
           np.concatenate(st), np.concatenate(sc), FS, 0.4)

    n_sorted = 22
    p = rng.dirichlet(np.full(n_sorted, 0.2), size=units.size)
    p[np.arange(units.size), rng.integers(0, n_sorted, size=units.size)] += 5.0
    p /= p.sum(axis=1, keepdims=True)
    sc = np.array([rng.choice(n_sorted, p=p[g]) for g in np.searchsorted(units, gt_sc)])
    keep = rng.random(n) < 0.85
    yield ("mixture", "each GT unit spread over 22 sorted units (one dominant, random, shared by some GT units), "
           "15% dropped, +-8 jitter", gt_st[keep] + rng.integers(-8, 9, size=keep.sum()), sc[keep], FS, 0.4)

    jit = rng.choice([-15, -14, -10, 0, 10, 14, 15], size=n)
    yield ("fs25k_delta06", "fs 25000 Hz, delta 0.6 ms: int(0.6/1000*25000) = 14 (float gives "
           "14.999..), jitters of exactly 14 and 15 samples", gt_st + jit, gt_sc.copy(), 25000.0, 0.6)
    jit = rng.choice([-6, -5, -3, 0, 3, 5, 6], size=n)
    yield ("fs20k_delta03", "fs 20000 Hz, delta 0.3 ms: int(0.3/1000*20000) = 5 (float gives 5.999..), "
           "jitters of exactly 5 and 6 samples", gt_st + jit, gt_sc.copy(), 20000.0, 0.3)


def conflict_sortings(cst, csc):
    rng = np.random.default_rng(5)
    u0, u1, u2, u3 = (cst[csc == k] for k in range(4))
    st = [u0 + 3, np.r_[u1, u0 + 1], u2[::3] + 4, np.sort(np.r_[u3 - 5, u3 + 5]), u2[1::3] + 2]
    sc = [np.full(x.size, k) for k, x in enumerate(st)]
    yield ("conflict", "synchronous GT units 0/1 (1-10 samples apart) with a sorted unit holding both "
           "trains; GT bursts (3 spikes 4 samples apart) matched by single sorted spikes in the "
           "middle; sorted doublets (+-5) around each spike of GT unit 3",
           np.concatenate(st), np.concatenate(sc), FS, 0.4)
    st = [np.sort(np.r_[u0, u0 + 6, u1 - 2]), u2, u2 + 11, np.sort(np.r_[u2[::3], u2[1::3]])]
    sc = [np.full(x.size, 7 + k) for k, x in enumerate(st)]
    yield ("conflict2", "sorted unit with 2-3 spikes per synchronous GT event; GT bursts copied, "
           "again shifted by 11 samples, and only the first two spikes of each burst (SI then counts "
           "3 matches per 2 sorted spikes and clips)", np.concatenate(st), np.concatenate(sc), FS, 0.4)


# ----------------------------------------------------------------------------- writing
def save_sorting(d, st, sc, style, fs):
    d.mkdir(exist_ok=True)
    for f in d.glob("*.npy"):
        f.unlink()
    if style == "ks":  # Kilosort4 style: uint64 (n,1) times, int32 clusters, params.py
        np.save(d / "spike_times.npy", st.astype(np.uint64).reshape(-1, 1))
        np.save(d / "spike_clusters.npy", sc.astype(np.int32))
        (d / "params.py").write_text(f"dat_path = 'recording.bin'\nn_channels_dat = 32\ndtype = 'int16'\n"
                                     f"offset = 0\nsample_rate = {fs!r}\nhp_filtered = True\n")
        return ["spike_times.npy", "spike_clusters.npy", "params.py"]
    if style == "templates":  # no spike_clusters.npy: Phy falls back to spike_templates.npy
        np.save(d / "spike_times.npy", st.astype(np.int64))
        np.save(d / "spike_templates.npy", sc.astype(np.uint32))
        return ["spike_times.npy", "spike_templates.npy"]
    if style == "int32":
        np.save(d / "spike_times.npy", st.astype(np.int32))
        np.save(d / "spike_clusters.npy", sc.astype(np.int64).reshape(-1, 1))
        return ["spike_times.npy", "spike_clusters.npy"]
    np.save(d / "spike_times.npy", st.astype(np.int64))
    np.save(d / "spike_clusters.npy", sc.astype(np.int64))
    return ["spike_times.npy", "spike_clusters.npy"]


STYLES = {"exact": "ks", "zero_match": "templates", "jitter": "int32", "empty": "ks", "miss_fp": "int32"}


def hungarian_cases():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(42)
    cases = []
    for k in range(60):
        nr, nc = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        if k % 3 == 0:
            m = rng.choice([0.0, 0.0, 0.0, 0.5, 0.6, 0.75, 1.0], size=(nr, nc))
        elif k % 3 == 1:
            m = rng.choice([0.0, 0.52, 0.9], size=(nr, nc))
        else:
            m = np.round(rng.random((nr, nc)), 2)
            m[m < 0.5] = 0
        r, c = linear_sum_assignment(-m)
        cases.append(dict(rows=nr, cols=nc, scores=[[float(x) for x in row] for row in m],
                          assignment=[[int(a), int(b)] for a, b in zip(r, c)]))
    return cases


def main():
    import spikeinterface
    import scipy

    gt_st, gt_sc = make_main_gt()
    write_gt("gt", gt_st, gt_sc, FS, int(DURATION_S * FS))
    cst, csc, cn = make_conflict_gt()
    write_gt("gt_conflict", cst, csc, FS, cn)
    names = []
    jobs = [(c, "gt", gt_st, gt_sc) for c in case_sortings(gt_st, gt_sc)]
    jobs += [(c, "gt_conflict", cst, csc) for c in conflict_sortings(cst, csc)]
    for (name, desc, st, sc, fs, delta_ms), gt_dir, g_st, g_sc in jobs:
        st, sc = np.asarray(st, np.int64), np.asarray(sc, np.int64)
        d = HERE / name
        files = save_sorting(d, st, sc, STYLES.get(name, "plain"), fs)
        # score.py loads with .ravel().astype(np.int64); use exactly what was written to disk
        st_l = np.load(d / files[0]).ravel().astype(np.int64)
        sc_l = np.load(d / files[1]).ravel().astype(np.int64)
        exp = expected(name, desc, gt_dir, g_st, g_sc, st_l, sc_l, fs, delta_ms, files)
        (d / "expected.json").write_text(json.dumps(exp))
        names.append(name)
        print(f"{name:14s} gt={len(exp['gt_unit_ids'])} sorted={len(exp['sorted_unit_ids'])} "
              f"wd={exp['well_detected']} fp={exp['false_positive_units']} red={exp['redundant']} "
              f"om={exp['overmerged']} bad={exp['bad_units']} acc={exp['all_gt']['accuracy_mean']} "
              f"ks_correct={exp['ks_correct']}")
    (HERE / "hungarian.json").write_text(json.dumps(hungarian_cases()))
    index = dict(cases=names, spikeinterface_version=spikeinterface.__version__,
                 scipy_version=scipy.__version__, numpy_version=np.__version__,
                 generator="tests/data/compare/make_compare_fixtures.py")
    (HERE / "cases.json").write_text(json.dumps(index, indent=1))
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"total fixture size {total / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
