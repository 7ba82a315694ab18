#!/usr/bin/env python
"""kilosort-rs and Kilosort4 4.1.7 on the same ground-truth datasets, one after the other.

    ~/ks-bench/.venv/bin/python bench/side_by_side.py static32 static64 [--skip-ks4] [--binary PATH]

For each dataset made by ../shared/bench/make_gt.py (in $KS_BENCH_HOME/data, default ~/ks-bench):
runs Kilosort4 on CPU with ../shared/bench/run_ks4.py (unless --skip-ks4, then its last run is
reused), then `kilosort-rs sort` under /usr/bin/time -v, scores both folders with
../shared/bench/score.py, and prints a Markdown table (wall time, peak RSS, well-detected units,
mean accuracy) that is also saved as $KS_BENCH_HOME/side_by_side.md. The two sorters never run at
the same time, so their times are comparable when taken in one sitting.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = (HERE / ".." / ".." / "shared" / "bench").resolve()
HOME = Path(os.environ.get("KS_BENCH_HOME", Path.home() / "ks-bench"))


def timed(cmd, log):
    """Runs cmd under /usr/bin/time -v; returns (wall s, peak RSS MB)."""
    start = time.time()
    with open(log, "w") as f:
        subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT, check=True)
    wall = time.time() - start
    text = Path(log).read_text()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan"))


def score(dataset, results):
    subprocess.run([sys.executable, str(SHARED / "score.py"), str(HOME / "data" / dataset), str(results), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((Path(results) / "score.json").read_text())


def ks4(dataset, skip):
    out = HOME / "runs" / "ks4" / dataset
    if not skip:
        subprocess.run([sys.executable, str(SHARED / "run_ks4.py"), dataset], check=True)
    info = json.loads((out / "runinfo.json").read_text())
    wall = info.get("wall_s") or info.get("wall_time_s") or float("nan")
    rss = info.get("peak_rss_mb") or info.get("max_rss_mb") or float("nan")
    return wall, rss, out


def ksrs(dataset, binary):
    data = HOME / "data" / dataset
    meta = json.loads((data / "meta.json").read_text())
    out = HOME / "runs" / "ksrs" / dataset
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "sort", str(data / "recording.bin"), "--n-chan-bin", str(meta["n_chan"]),
           "--probe", str(data / "probe.json"), "--results-dir", str(out), "--overwrite", "-q"]
    wall, rss = timed(cmd, HOME / "runs" / "ksrs" / f"{dataset}.time.txt")
    return wall, rss, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--skip-ks4", action="store_true", help="reuse the last Kilosort4 run of each dataset")
    p.add_argument("--binary", default=str(HERE / ".." / "target" / "release" / "kilosort-rs"))
    a = p.parse_args()
    rows = ["| dataset | sorter | wall (s) | peak RSS (MB) | well detected | mean accuracy | units |",
            "|---|---|---|---|---|---|---|"]
    for d in a.datasets:
        for name, run in (("Kilosort4 4.1.7 (CPU)", lambda: ks4(d, a.skip_ks4)), ("kilosort-rs", lambda: ksrs(d, a.binary))):
            try:
                wall, rss, out = run()
                s = score(d, out)
                rows.append(f"| {d} | {name} | {wall:.0f} | {rss:.0f} | {s['well_detected']} / {s['n_gt_units']} | "
                            f"{s['accuracy_mean']:.3f} | {s['n_sorted_units']} |")
            except Exception as e:  # a failed run is a row, not the end of the benchmark
                rows.append(f"| {d} | {name} | failed: {e} | | | | |")
            print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    (HOME / "side_by_side.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
