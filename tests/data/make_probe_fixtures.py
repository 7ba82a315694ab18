"""Make the probe reference fixtures in tests/data/probes/.

Run from the repository root with:

    ~/ks-bench/.venv/bin/python tests/data/make_probe_fixtures.py

Tested with kilosort 4.1.7, probeinterface 0.4.2, spikeinterface 0.105.3,
scipy 1.17 and numpy 2.4.  Output is deterministic.

What it writes (all under tests/data/probes/):

* np1_chanmap.mat, np2_chanmap.mat, linear16_chanmap.mat,
  linear16_chanmap_oned.mat
    Kilosort channel-map .mat files (MATLAB v5, scipy.io.savemat) for the
    built-in probes.  NP1 is written uncompressed, NP2 compressed; the
    *_oned file stores its 1-D arrays as row vectors, the others as column
    vectors.  NP1 has no kcoords field.
* np1_ks4.json, np2_ks4.json, linear16_ks4.json
    What kilosort.io.load_probe makes of those .mat files, written with
    kilosort.io.save_probe.
* pi_two_shanks.json, pi_two_shanks.prb, pi_two_shanks_by_shank.prb,
  pi_two_shanks_np2repr.prb, pi_two_probes.json
    probeinterface files (write_probeinterface / write_prb).
* pi_two_shanks_prb_ks4.json, pi_two_shanks_by_shank_prb_ks4.json
    What kilosort.io.load_probe makes of the .prb files (save_probe format).
* pi_two_shanks_expected.json, pi_two_probes_expected.json
    The Kilosort probe dicts expected from the probeinterface JSON files under
    kilosort-rs's conversion rule (see `expected_from_probegroup`).
"""

import json
import tempfile
from pathlib import Path

import numpy as np
import probeinterface as pi
import scipy.io
from kilosort.io import load_probe, save_probe

OUT = Path(__file__).parent / "probes"
FS = 30000.0


# --------------------------------------------------------------------------
# Built-in probes as .mat channel maps
# --------------------------------------------------------------------------

def np1_geometry():
    i = np.arange(384)
    x = np.array([43.0, 11.0, 59.0, 27.0])[i % 4]
    y = 20.0 * (i // 2 + 1)
    connected = np.ones(384, dtype=bool)
    connected[191] = False
    return dict(x=x, y=y, connected=connected, kcoords=None,
                name="neuropixPhase3B1")


def np2_geometry():
    i = np.arange(384)
    x = np.array([0.0, 32.0])[i % 2]
    y = 15.0 * (i // 2)
    connected = np.ones(384, dtype=bool)
    return dict(x=x, y=y, connected=connected, kcoords=np.ones(384),
                name="NeuroPix2_default")


def linear16_geometry():
    i = np.arange(16)
    x = np.ones(16)
    y = i + 1.0
    connected = np.ones(16, dtype=bool)
    connected[[4, 9]] = False
    return dict(x=x, y=y, connected=connected, kcoords=np.ones(16),
                name="Linear16x1_test")


def write_mat(path, geom, do_compression, oned_as):
    n = len(geom["x"])
    mdict = {
        "chanMap": np.arange(n, dtype=np.float64) + 1.0,   # 1-based, double
        "chanMap0ind": np.arange(n, dtype=np.float64),     # 0-based, double
        "connected": geom["connected"].astype(bool),       # logical
        "xcoords": geom["x"].astype(np.float64),
        "ycoords": geom["y"].astype(np.float64),
        "fs": FS,
        "name": geom["name"],
    }
    if geom["kcoords"] is not None:
        mdict["kcoords"] = geom["kcoords"].astype(np.float64)
    scipy.io.savemat(path, mdict, do_compression=do_compression,
                     oned_as=oned_as, format="5")
    # savemat puts the current time into the 116-byte text header; replace it
    # with a fixed text so the output is reproducible.
    text = b"MATLAB 5.0 MAT-file Platform: posix, Created by: make_probe_fixtures.py"
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(text.ljust(116, b" "))


def check_ks4_probe(probe, geom, label):
    c = geom["connected"]
    n = len(c)
    ok = True
    ok &= probe["n_chan"] == n
    ok &= np.array_equal(probe["chanMap"], np.arange(n)[c])
    ok &= np.array_equal(probe["xc"], geom["x"][c].astype(np.float32))
    ok &= np.array_equal(probe["yc"], geom["y"][c].astype(np.float32))
    kexp = (np.zeros(c.sum()) if geom["kcoords"] is None
            else geom["kcoords"][c])
    ok &= np.array_equal(probe["kcoords"], kexp.astype(np.float32))
    dtypes = {k: (v.dtype.name if isinstance(v, np.ndarray) else type(v).__name__)
              for k, v in probe.items()}
    print(f"{label}: load_probe matches formulas: {bool(ok)}  "
          f"(n_chan={probe['n_chan']}, kept={c.sum()}, dtypes={dtypes})")
    assert ok, label


def make_builtin_fixtures():
    cases = [
        ("np1", np1_geometry(), False),
        ("np2", np2_geometry(), True),
        ("linear16", linear16_geometry(), False),
    ]
    for stem, geom, compress in cases:
        mat_path = OUT / f"{stem}_chanmap.mat"
        write_mat(mat_path, geom, do_compression=compress, oned_as="column")
        probe = load_probe(mat_path)
        check_ks4_probe(probe, geom, stem)
        save_probe(probe, OUT / f"{stem}_ks4.json")

    geom = linear16_geometry()
    oned = OUT / "linear16_chanmap_oned.mat"
    write_mat(oned, geom, do_compression=False, oned_as="row")
    check_ks4_probe(load_probe(oned), geom, "linear16 (row vectors)")
    raw = scipy.io.loadmat(oned)
    assert raw["xcoords"].shape == (1, 16)


# --------------------------------------------------------------------------
# probeinterface probes
# --------------------------------------------------------------------------

def two_shank_probe():
    probe = pi.generate_multi_shank(
        num_shank=2, shank_pitch=[150, 0], num_columns=2,
        num_contact_per_column=4, xpitch=16, ypitch=20,
        contact_shapes="circle", contact_shape_params={"radius": 6})
    # 16 contacts; contact 5 unconnected, the others wired to a permutation
    # of device channels 0..14.
    dci = np.array([7, 3, 12, 0, 9, -1, 14, 1, 5, 11, 2, 13, 6, 10, 4, 8])
    assert sorted(dci[dci >= 0].tolist()) == list(range(15))
    probe.set_device_channel_indices(dci)
    return probe


def two_probe_group():
    a = pi.generate_linear_probe(num_elec=4, ypitch=25)
    a.set_device_channel_indices([3, 1, 2, 0])
    b = pi.generate_multi_shank(
        num_shank=2, shank_pitch=[100, 0], num_columns=1,
        num_contact_per_column=3, ypitch=30,
        contact_shapes="square", contact_shape_params={"width": 10})
    b.move([300, 50])
    b.set_device_channel_indices([8, 4, -1, 6, 5, 7])
    group = pi.ProbeGroup()
    group.add_probe(a)
    group.add_probe(b)
    return group


def shank_number(s):
    s = str(s)
    return 0.0 if s == "" else float(int(s))


def expected_from_probegroup(group):
    """kilosort-rs conversion of a probeinterface ProbeGroup to a KS4 probe.

    Contacts wired to -1 are removed; chanMap = device_channel_indices,
    xc/yc = contact x/y, kcoords = numeric shank id (empty -> 0).  Probes are
    concatenated in order, each probe's kcoords offset by (largest kcoords of
    the earlier probes + 1).
    """
    chan, xc, yc, kc = [], [], [], []
    offset = 0.0
    for probe in group.probes:
        dci = np.asarray(probe.device_channel_indices)
        keep = dci >= 0
        pos = np.asarray(probe.contact_positions, dtype=np.float64)
        sids = probe.shank_ids
        if sids is None:
            sids = [""] * probe.get_contact_count()
        shanks = np.array([shank_number(s) for s in sids])
        k = shanks + offset
        chan += dci[keep].tolist()
        xc += pos[keep, 0].tolist()
        yc += pos[keep, 1].tolist()
        kc += k[keep].tolist()
        # Offset = largest kcoords emitted so far (kept contacts only) + 1.
        # (The fixtures do not depend on whether unconnected contacts count.)
        if kc:
            offset = max(kc) + 1.0
    return {"chanMap": [int(c) for c in chan], "xc": xc, "yc": yc,
            "kcoords": kc, "n_chan": len(chan)}


def check_prb_literals(path):
    import ast
    text = path.read_text()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            return False
    return True


def spikeinterface_view(probe_or_group, n_chan_bin):
    """The dict spikeinterface's Kilosort4 wrapper writes for this probe."""
    try:
        import spikeinterface.core as si
        from spikeinterface.sorters.external.kilosort4 import Kilosort4Sorter
    except Exception as e:  # pragma: no cover
        print("  spikeinterface not usable:", e)
        return None
    rec = si.NumpyRecording(np.zeros((10, n_chan_bin), dtype="int16"),
                            sampling_frequency=FS)
    # In spikeinterface 0.105 set_probe/set_probegroup work in place; the
    # recording keeps its channel order, so row i is device channel i.
    if isinstance(probe_or_group, pi.ProbeGroup):
        rec.set_probegroup(probe_or_group, group_mode="by_shank")
    else:
        rec.set_probe(probe_or_group, group_mode="by_shank")
    with tempfile.TemporaryDirectory() as tmp:
        Kilosort4Sorter._setup_json_probe_map(rec, Path(tmp))
        d = json.loads((Path(tmp) / "chanMap.json").read_text())
    d["device_channel"] = list(range(n_chan_bin))
    return d


def compare_with_spikeinterface(expected, probe_or_group, n_chan_bin, label):
    d = spikeinterface_view(probe_or_group, n_chan_bin)
    if d is None:
        return
    # Compare per device channel.
    e = {c: (x, y, k) for c, x, y, k in zip(expected["chanMap"], expected["xc"],
                                             expected["yc"], expected["kcoords"])}
    s = {dev: (x, y, k) for dev, x, y, k in zip(d["device_channel"], d["xc"],
                                                d["yc"], d["kcoords"])}
    same_xy = (set(e) == set(s)
               and all(e[c][:2] == tuple(map(float, s[c][:2])) for c in e))
    same_k = set(e) == set(s) and all(e[c][2] == s[c][2] for c in e)
    print(f"{label}: spikeinterface wrapper vs expected: channels+xy equal: "
          f"{same_xy}, kcoords equal: {same_k}")
    print(f"  SI chanMap={d['chanMap']}\n  SI rows->device={d['device_channel']}"
          f"\n  SI kcoords={d['kcoords']}\n  expected kcoords by device "
          f"channel={[e[c][2] for c in sorted(e)]}")


def make_probeinterface_fixtures():
    probe = two_shank_probe()
    group = pi.ProbeGroup()
    group.add_probe(probe)
    pi.write_probeinterface(OUT / "pi_two_shanks.json", group)

    # write_prb with numpy>=2 prints scalars as np.float64(...) /
    # np.int64(...).  Keep that raw output as one fixture, and write the
    # main fixtures with legacy printing so they contain literals only.
    pi.write_prb(OUT / "pi_two_shanks_np2repr.prb", group)
    print("pi_two_shanks_np2repr.prb literal-only:",
          check_prb_literals(OUT / "pi_two_shanks_np2repr.prb"))
    with np.printoptions(legacy="1.25"):
        pi.write_prb(OUT / "pi_two_shanks.prb", group)
        pi.write_prb(OUT / "pi_two_shanks_by_shank.prb", group,
                     group_mode="by_shank")
    for name in ["pi_two_shanks.prb", "pi_two_shanks_by_shank.prb"]:
        assert check_prb_literals(OUT / name), name
        ks = load_probe(OUT / name)
        save_probe(ks, OUT / name.replace(".prb", "_prb_ks4.json"))
        print(f"{name}: literal-only True; KS4 load_probe -> chanMap="
              f"{ks['chanMap'].tolist()} kcoords={ks['kcoords'].tolist()} "
              f"n_chan={ks['n_chan']}")
    # The numpy-2 repr file is still readable by Kilosort4 (it exec()s with np).
    ks_np2 = load_probe(OUT / "pi_two_shanks_np2repr.prb")
    ks_leg = load_probe(OUT / "pi_two_shanks.prb")
    assert all(np.array_equal(ks_np2[k], ks_leg[k])
               for k in ["chanMap", "xc", "yc", "kcoords"])

    exp = expected_from_probegroup(group)
    save_probe(exp, OUT / "pi_two_shanks_expected.json")
    compare_with_spikeinterface(exp, probe, 15, "pi_two_shanks")

    group2 = two_probe_group()
    pi.write_probeinterface(OUT / "pi_two_probes.json", group2)
    exp2 = expected_from_probegroup(group2)
    save_probe(exp2, OUT / "pi_two_probes_expected.json")
    compare_with_spikeinterface(exp2, group2, 9, "pi_two_probes")

    # Round trip: read the JSON files back and check the rule gives the same.
    for name, exp_d in [("pi_two_shanks.json", exp), ("pi_two_probes.json", exp2)]:
        back = expected_from_probegroup(pi.read_probeinterface(OUT / name))
        assert back == exp_d, name
    print("pi_two_shanks expected:", exp)
    print("pi_two_probes expected:", exp2)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    make_builtin_fixtures()
    make_probeinterface_fixtures()


if __name__ == "__main__":
    main()
