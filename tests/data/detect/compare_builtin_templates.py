"""Compares kilosort-rs's built-in universal temporal templates with Kilosort4's packaged set.

Usage (from the repository root, with the Python environment that has kilosort 4.1.7):

    ~/ks-bench/.venv/bin/python tests/data/detect/compare_builtin_templates.py \
        [crates/kilosort/src/detect/builtin_templates.rs]

Ours are parsed from the generated Rust source; Kilosort4's are read from the `wTEMP.npz` that
the installed `kilosort` package ships (nothing of it is copied into this repository). Printed:

- the principal angles between the spans of the two `wPCA` sets (cosines = singular values of
  ours @ theirs.T, both with orthonormal rows), and the mean squared cosine (subspace overlap);
- for each of their `wTEMP` rows, |cosine| to its projection on our `wPCA` span (how much of it
  our PCs capture) and the best |cosine| to any of our `wTEMP` rows; the same the other way round;
- for each set, the energy fraction of each set's templates captured by its own first PC.
"""

import re
import sys
from pathlib import Path

import numpy as np

import kilosort

REPO = Path(__file__).resolve().parents[3]
DEFAULT_SOURCE = REPO / "crates/kilosort/src/detect/builtin_templates.rs"


def read_rust_matrix(text, name):
    """The `const NAME: [[f32; C]; R] = [...];` matrix of a generated source file."""
    m = re.search(rf"const {name}: \[\[f32; (\d+)\]; (\d+)\] = \[(.*?)\];", text, re.S)
    cols, rows, body = int(m.group(1)), int(m.group(2)), m.group(3)
    values = [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", body)]
    return np.array(values, dtype=np.float64).reshape(rows, cols)


def orthonormal_rows(a):
    q, _ = np.linalg.qr(a.T)
    return q.T


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    text = source.read_text()
    ours_pca, ours_temp = read_rust_matrix(text, "BUILTIN_PCS"), read_rust_matrix(text, "BUILTIN_TEMPLATES")
    theirs = np.load(Path(kilosort.__file__).parent / "wTEMP.npz")
    their_pca, their_temp = theirs["wPCA"].astype(np.float64), theirs["wTEMP"].astype(np.float64)
    print(f"kilosort {kilosort.__version__}; ours {ours_pca.shape}/{ours_temp.shape}, "
          f"theirs {their_pca.shape}/{their_temp.shape}")

    q_ours, q_theirs = orthonormal_rows(ours_pca), orthonormal_rows(their_pca)
    cosines = np.linalg.svd(q_ours @ q_theirs.T, compute_uv=False)
    print("principal-angle cosines, wPCA spans:", np.array2string(cosines, precision=3))
    print("principal angles (deg):", np.array2string(np.degrees(np.arccos(np.clip(cosines, -1, 1))), precision=1))
    print(f"subspace overlap (mean squared cosine): {np.mean(cosines ** 2):.3f}")
    for k in range(1, len(cosines) + 1):
        print(f"  overlap of the first {k} PCs' spans: "
              f"{np.mean(np.linalg.svd(q_ours[:k] @ orthonormal_rows(their_pca[:k]).T, compute_uv=False) ** 2):.3f}")

    def report(label, temps, span, others):
        unit = temps / np.linalg.norm(temps, axis=1, keepdims=True)
        in_span = np.linalg.norm(unit @ span.T, axis=1)
        best = np.max(np.abs(unit @ (others / np.linalg.norm(others, axis=1, keepdims=True)).T), axis=1)
        print(f"{label}: |cos| to the other wPCA span:", np.array2string(in_span, precision=3),
              " best |cos| to the other wTEMP:", np.array2string(best, precision=3))

    report("their wTEMP", their_temp, q_ours, ours_temp)
    report("our wTEMP  ", ours_temp, q_theirs, their_temp)
    for label, pca, temp in [("ours", ours_pca, ours_temp), ("theirs", their_pca, their_temp)]:
        unit = temp / np.linalg.norm(temp, axis=1, keepdims=True)
        energy = (unit @ pca[0]) ** 2
        print(f"{label}: energy of each wTEMP row on its own first PC:", np.array2string(energy, precision=3),
              f" troughs at samples {np.argmin(temp, axis=1)}")


if __name__ == "__main__":
    main()
