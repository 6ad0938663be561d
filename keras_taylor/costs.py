"""What removing a channel group saves, in NumPy alone: cost tables and goals.

A `LayerCosts` table holds one row per layer call. Each row's cost is a
bilinear function of how many channels stay alive at the layer's input
(`i`) and output (`o`):

    cost = c0 + c_in * i + c_out * o + c_io * i * o

which is exact for the learnables and multiply-accumulates of convolutions,
depthwise convolutions, Dense layers and batch norms (a convolution's kernel
is in x out channels, its bias out; a depthwise kernel follows its one
channel count), and a fitted model for latency. Removing a channel group
changes `i` and `o` of every row it flows through, so the saving a group
brings includes the knock-on saving in the layers that consume it, and it
is recomputed from the current alive set as widths shrink.

`Speedup` and `LatencyBudget` say a goal as a user would ("2x faster",
"at most 3 ms").
"""

import dataclasses

import numpy as np

from keras_taylor.errors import InvalidArgumentError

COSTS = ("learnables", "macs", "latency")


@dataclasses.dataclass(frozen=True)
class Speedup:
    """Goal: the cost divided by `factor` (e.g. `Speedup(2.0)`: 2x faster).

    With `cost="latency"` the predicted latency of the whole model falls to
    `1 / factor` of the unpruned model's; with `cost="macs"` its
    multiply-accumulates do.

    Example:

    >>> Speedup(2.0).target(original=10.0, current=10.0)
    5.0
    """

    factor: float

    def __post_init__(self):
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) or not self.factor > 1:
            raise InvalidArgumentError(f"Speedup factor must be a number > 1, got {self.factor!r}")

    def target(self, original, current):
        return original / self.factor


@dataclasses.dataclass(frozen=True)
class LatencyBudget:
    """Goal: a predicted latency of at most `ms` milliseconds per call.

    Example:

    >>> LatencyBudget(ms=3).target(original=5.0, current=4.0)
    3.0
    """

    ms: float

    def __post_init__(self):
        if isinstance(self.ms, bool) or not isinstance(self.ms, (int, float)) or not self.ms > 0:
            raise InvalidArgumentError(f"LatencyBudget ms must be a number > 0, got {self.ms!r}")

    def target(self, original, current):
        return float(self.ms)


class LayerCosts:
    """Costs of layer calls as bilinear functions of their alive channels.

    Args:
        num_groups: number of channel groups.
        names: one name per row (layer call).
        in_groups: per row, the channel group of each input channel (int
            array; channels of one group may repeat, e.g. after Flatten).
        out_groups: per row, the channel group of each output channel.
        coef: float array `(rows, 4)`: `c0, c_in, c_out, c_io` per row.
        base: a cost no row holds (a fixed per-call time, say).

    Example:

    >>> import numpy as np
    >>> # one conv, 2 -> 3 channels, 9 weights per in x out pair plus 3 biases
    >>> t = LayerCosts(5, ["conv"], [np.array([0, 1])], [np.array([2, 3, 4])],
    ...                np.array([[0.0, 0.0, 1.0, 9.0]]))
    >>> t.total(np.ones(5, bool))
    57.0
    >>> t.savings(np.ones(5, bool)).tolist()  # an input channel, an output channel
    [27.0, 27.0, 19.0, 19.0, 19.0]
    """

    def __init__(self, num_groups, names, in_groups, out_groups, coef, base=0.0):
        self.num_groups = int(num_groups)
        self.names = list(names)
        self.in_groups = [np.asarray(g, dtype=np.int64) for g in in_groups]
        self.out_groups = [np.asarray(g, dtype=np.int64) for g in out_groups]
        self.coef = np.asarray(coef, dtype=np.float64).reshape(len(self.names), 4)
        self.base = float(base)
        # per row: (groups, channels of each) at the input and at the output
        self._in = [np.unique(g, return_counts=True) for g in self.in_groups]
        self._out = [np.unique(g, return_counts=True) for g in self.out_groups]

    def widths(self, alive):
        """`(i, o)`: alive input and output channels of every row."""
        alive = np.asarray(alive, dtype=bool)
        i = np.array([alive[g].sum() for g in self.in_groups], dtype=np.float64)
        o = np.array([alive[g].sum() for g in self.out_groups], dtype=np.float64)
        return i, o

    def per_row(self, alive):
        """Cost of every row with the `alive` channel groups kept."""
        i, o = self.widths(alive)
        c = self.coef
        return c[:, 0] + c[:, 1] * i + c[:, 2] * o + c[:, 3] * i * o

    def total(self, alive):
        return self.base + float(self.per_row(alive).sum())

    def savings(self, alive):
        """What removing each group alone would save now (0 for dead groups)."""
        alive = np.asarray(alive, dtype=bool)
        i, o = self.widths(alive)
        out = np.zeros(self.num_groups)
        for r in range(len(self.names)):
            c0, c_in, c_out, c_io = self.coef[r]
            di = np.zeros(self.num_groups)
            do = np.zeros(self.num_groups)
            g, n = self._in[r]
            di[g] = n
            g, n = self._out[r]
            do[g] = n
            out += c_in * di + c_out * do + c_io * (i[r] * o[r] - (i[r] - di) * (o[r] - do))
        out[~alive] = 0.0
        return out

    def combined(self, weights, base=0.0):
        """A table with the same rows and `coef * weights[row]` (a float or one per row)."""
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (len(self.names),))
        return LayerCosts(
            self.num_groups, self.names, self.in_groups, self.out_groups, self.coef * w[:, None], base
        )

    def plus(self, other, base=0.0):
        """A table whose every row costs this row's plus `other`'s (same rows)."""
        return LayerCosts(
            self.num_groups, self.names, self.in_groups, self.out_groups, self.coef + other.coef, base
        )


def bilinear_coefficients(full, half_in, half_out, half_both, i, o, i_half, o_half):
    """`c0, c_in, c_out, c_io` of a cost measured at full and reduced widths.

    `full` is the cost at `(i, o)`, `half_in` at `(i_half, o)`, `half_out`
    at `(i, o_half)`, `half_both` at `(i_half, o_half)`. A width that cannot
    shrink (`i_half == i`) contributes no term.

    Example:

    >>> bilinear_coefficients(57, 30, 38, 20, 2, 3, 1, 2)  # 9 i o + o
    (0.0, 0.0, 1.0, 9.0)
    """
    di, do = i - i_half, o - o_half
    c_io = (full - half_in - half_out + half_both) / (di * do) if di and do else 0.0
    c_in = (full - half_in) / di - c_io * o if di else 0.0
    c_out = (full - half_out) / do - c_io * i if do else 0.0
    c0 = full - c_in * i - c_out * o - c_io * i * o
    return tuple(float(round(v, 9)) for v in (c0, c_in, c_out, c_io))
