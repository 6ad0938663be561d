"""The fitted latency model's terms and fits: feature rows of alive sets, NNLS in relative error.

`keras_taylor.profile` times variants and keeps the result; this module
turns alive sets into the model's terms (a fixed part, MACs per layer kind,
elements written and read) and fits their times (`fit`), or refits only the
fixed part and one common factor (`fit_level`) once layer scales are set.
"""

import numpy as np
import pandas as pd

from keras_taylor import accounting, attribution

KINDS = ("conv", "pointwise", "depthwise", "dense")
FEATURES = ("fixed",) + KINDS + ("activations", "inputs")


def features(graph, alive_sets, scales=None):
    """One row per alive set: 1, MACs per kind, output elements, input elements read.

    Each layer call's MACs count `scales[name]` times (default 1): its time
    per MAC against its kind's (`keras_taylor.attribution`).
    """
    tables, kinds = accounting.layer_cost_tables(graph)
    weight = attribution.scale_vector(tables["macs"].names, scales)
    rows = []
    for alive in alive_sets:
        macs = tables["macs"].per_row(alive) * weight
        rows.append([1.0] + [macs[kinds == k].sum() for k in KINDS]
                    + [tables["activations"].total(alive), tables["inputs"].total(alive)])
    return np.array(rows)


def fit(x, ms, weights=None):
    """Non-negative coefficients of `ms ~ x` by column-scaled NNLS in relative error.

    Each variant's row is divided by its time, so the fit minimises relative,
    not absolute, errors: in milliseconds the unpruned and wide variants
    outweigh the heavily pruned ones, whose time is mostly the fixed part,
    and the fixed part came out too small (MobileNetV2 on LiteRT: 0), which
    made pruned models look faster than they ran. Unused columns: 0.
    `weights` (one per row, default 1) count a row that many times.
    """
    from scipy.optimize import nnls

    ms = np.asarray(ms, dtype=np.float64)
    w = np.ones_like(ms) if weights is None else np.asarray(weights, dtype=np.float64)
    scale = np.abs(x).max(axis=0)
    used = scale > 0
    solution, _ = nnls(w[:, None] * x[:, used] / scale[used] / ms[:, None], w)
    theta = np.zeros(x.shape[1])
    theta[used] = solution / scale[used]
    return dict(zip(FEATURES, theta.tolist()))


def fit_level(x, ms, weights, coefficients):
    """`coefficients` with the fixed time refitted and the others times one common factor (NNLS, relative error)."""
    from scipy.optimize import nnls

    theta = np.array([coefficients[k] for k in FEATURES])
    design = np.column_stack([np.ones(len(ms)), x[:, 1:] @ theta[1:]]) * (weights / ms)[:, None]
    (fixed, factor), _ = nnls(design, weights)
    return dict({k: float(v) * factor for k, v in zip(FEATURES[1:], theta[1:])}, fixed=float(fixed))


def multiply_accumulates(graph, alive_sets):
    """The MACs of each alive set."""
    macs = accounting.layer_cost_tables(graph)[0]["macs"]
    return [int(macs.total(alive)) for alive in alive_sets]


def sample_table(x, ms, coefficients, weights=None, labels=None, macs=None):
    """The timed variants: what each is, MACs, measured and fitted ms, fit weight, and its feature row."""
    predicted = x @ np.array([coefficients[k] for k in FEATURES])
    table = pd.DataFrame({"variant": labels if labels is not None else [""] * len(ms),
                          "multiply_accumulates": np.asarray(macs, dtype=np.int64) if macs is not None
                          else x[:, 1:1 + len(KINDS)].sum(axis=1).astype(np.int64),
                          "measured_ms": ms, "predicted_ms": predicted,
                          "weight": np.ones(len(ms)) if weights is None else weights})
    for k, name in enumerate(FEATURES):
        table[f"x_{name}"] = x[:, k]
    return table
