"""Which channel groups go: the pruning decision, in NumPy alone.

Given a score per channel group, which groups are still alive, how the
groups spread over layers and what the goal costs, `plan` says which groups
to remove. It knows nothing of Keras: the channel graph describes the model
to it as a `ChannelLayout`, and the prunable model applies its answer as masks.

The rules it keeps:

* never a layer's last channel: a group goes only if every layer holding
  channels of it keeps at least one channel;
* lowest score first (ties in group order), or, given `savings`, lowest
  score per unit of cost saved first (HALP's importance per unit latency,
  Shen et al. 2022, as a greedy knapsack), the savings recomputed from the
  alive set as widths shrink;
* at most `limit` groups, and no more than needed to reduce a cost by
  `reduce_by` (the goal);
* with `round_to=N`, every layer that loses channels keeps a multiple of N
  (at least N), as Torch-Pruning's `round_to`: each layer rounded to its
  nearest multiple, and the plan as a whole toward pruning slightly more;
  layers created with fewer than N channels are exempt.

A cost is anything with `total(alive) -> float` that does not grow when a
group is removed: `CostVector` (a fixed cost per group, e.g. learnables,
MACs or latency estimates) or an exact measure of the pruned model
(`CostFunction`, how `TaylorPrunableModel` counts learnables).
"""

import numpy as np


class ChannelLayout:
    """How channel groups spread over the layers that create channels.

    Args:
        num_groups: number of channel groups.
        layer_groups: a list, one entry per layer, of the channel group of
            each output channel the layer creates (int arrays).
        removable: bool array, one per group: whether a criterion may remove
            it (groups that are blocked or hold no created channel may not).

    Example:

    >>> import numpy as np
    >>> layout = ChannelLayout(3, [np.array([0, 1]), np.array([2])], np.ones(3, bool))
    >>> layout.remove_in_order([0, 1, 2], np.ones(3, bool))[1]  # each layer keeps one
    [0]
    """

    def __init__(self, num_groups, layer_groups, removable):
        self.num_groups = int(num_groups)
        self.removable = np.asarray(removable, dtype=bool)
        if self.removable.shape != (self.num_groups,):
            raise ValueError(
                f"removable must have shape ({self.num_groups},), got {self.removable.shape}"
            )
        self.num_layers = len(layer_groups)
        # members[g]: (layer index, channels of g in that layer) for every layer
        # holding channels of g.
        self.members = [[] for _ in range(self.num_groups)]
        for layer, groups in enumerate(layer_groups):
            values, counts = np.unique(np.asarray(groups, dtype=np.int64), return_counts=True)
            for g, c in zip(values, counts):
                self.members[int(g)].append((layer, int(c)))
        self._layer_groups = [np.asarray(g, dtype=np.int64) for g in layer_groups]
        self.full_counts = np.array([len(g) for g in self._layer_groups], dtype=np.int64)
        # layers[g]: the layers holding channels of g
        self.layers_of = [[layer for layer, _ in m] for m in self.members]

    def channels_left(self, alive):
        """Channels each layer keeps when groups with `alive` False are gone."""
        alive = np.asarray(alive, dtype=bool)
        return np.array([int(alive[g].sum()) for g in self._layer_groups], dtype=np.int64)

    def remove_in_order(self, order, alive, limit=None):
        """Removes groups in `order` while every layer keeps one channel.

        Groups already removed are skipped, as are groups whose removal would
        empty a layer (later groups may still go).

        Returns:
            `(alive, removed)`: the new alive array and the removed groups,
            in the order they went.
        """
        alive = np.array(alive, dtype=bool)
        left = self.channels_left(alive)
        removed = []
        for g in order:
            if limit is not None and len(removed) >= limit:
                break
            members = self.members[int(g)]
            if not alive[g] or any(left[layer] - c < 1 for layer, c in members):
                continue
            for layer, c in members:
                left[layer] -= c
            alive[g] = False
            removed.append(int(g))
        return alive, removed

    def layer_groups(self, layer):
        """The channel group of each channel layer number `layer` creates."""
        return self._layer_groups[layer]

    def candidates(self, alive):
        """Groups still alive that a criterion may remove."""
        return np.flatnonzero(np.asarray(alive, dtype=bool) & self.removable)

    def num_removable(self, alive):
        """How many more groups could go, each layer keeping one channel."""
        return len(self.remove_in_order(self.candidates(alive), alive)[1])


class CostVector:
    """A cost that is a fixed amount per alive group plus a constant.

    Args:
        per_group: float array, one per channel group.
        base: the cost of everything no group affects.

    Example:

    >>> cost = CostVector([2.0, 3.0], base=1.0)
    >>> cost.total([True, False])
    3.0
    """

    def __init__(self, per_group, base=0.0):
        self.per_group = np.asarray(per_group, dtype=np.float64)
        self.base = float(base)

    def total(self, alive):
        return self.base + float(self.per_group[np.asarray(alive, dtype=bool)].sum())


class CostFunction:
    """A cost measured by a function of the alive array (exact, not additive).

    Args:
        fn: `fn(alive) -> float`, not growing when a group is removed.
    """

    def __init__(self, fn):
        self.fn = fn

    def total(self, alive):
        return float(self.fn(np.asarray(alive, dtype=bool)))


def fewest_for_reduction(alive, removable, cost, reduce_by):
    """Fewest leading groups of `removable` whose removal cuts `cost` by `reduce_by`.

    A binary search over prefixes, since removing more never costs more.
    Returns `len(removable)` when even all of them fall short.
    """
    alive = np.asarray(alive, dtype=bool)
    target = cost.total(alive) - reduce_by
    lo, hi = 0, len(removable)
    trial = alive.copy()
    while lo < hi:
        mid = (lo + hi) // 2
        trial[:] = alive
        trial[np.asarray(removable[:mid], dtype=np.int64)] = False
        if cost.total(trial) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def plan(scores, alive, layout, limit=None, cost=None, reduce_by=None, savings=None, round_to=None,
         round_down=False):
    """The channel groups to remove now, lowest score (or score per cost) first.

    Args:
        scores: float array, one per channel group (only alive, removable
            groups are read).
        alive: bool array, one per channel group.
        layout: the `ChannelLayout` of the model.
        limit: the most groups to remove, or None for no limit (`round_to`
            may remove a few more, to round each layer).
        cost: what `reduce_by` is measured in (`CostVector`, `CostFunction`,
            `costs.LayerCosts`).
        reduce_by: stop once `cost` has fallen by this much (None: no goal).
        savings: None (rank by score alone) or `savings(alive)`, what
            removing each group would save now: rank by score / saving.
        round_to: None, or an int N >= 1: keep each pruned layer's channel
            count a multiple of N.
        round_down: round every pruned layer down to its multiple below
            instead of to the nearest one (the faster side, for goals whose
            predicted cost errs on the low side: latency).

    Returns:
        int array of the groups to remove, in the order they go.

    Example:

    >>> import numpy as np
    >>> layout = ChannelLayout(4, [np.arange(4)], np.ones(4, bool))
    >>> plan(np.array([0.4, 0.1, 0.3, 0.2]), np.ones(4, bool), layout, limit=2).tolist()
    [1, 3]
    >>> cost = CostVector([5.0, 1.0, 1.0, 1.0])
    >>> plan(np.array([0.4, 0.1, 0.3, 0.2]), np.ones(4, bool), layout,
    ...      cost=cost, reduce_by=2.0).tolist()
    [1, 3]
    >>> plan(np.array([0.4, 0.1, 0.3, 0.2]), np.ones(4, bool), layout,  # 0.4 / 5 is cheapest
    ...      cost=cost, reduce_by=2.0, savings=lambda alive: cost.per_group * alive).tolist()
    [0]
    """
    if (cost is None) != (reduce_by is None):
        raise ValueError("give cost and reduce_by together, or neither")
    scores = np.asarray(scores, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool)
    if savings is None:
        candidates = layout.candidates(alive)
        order = candidates[np.argsort(scores[candidates], kind="stable")]
        _, removable = layout.remove_in_order(order, alive)
    else:
        removable = ranked_by_saving(scores, alive, layout, savings)
    count = len(removable) if limit is None else min(int(limit), len(removable))
    if reduce_by is not None:
        count = min(count, fewest_for_reduction(alive, removable, cost, reduce_by))
    if not round_to or round_to == 1:
        return np.asarray(removable[:count], dtype=np.int64)
    rounded = rounded_plan(layout, alive, removable, count, round_to, cost, reduce_by, nearest=not round_down)
    return np.asarray(rounded, dtype=np.int64)


def rounded_plan(layout, alive, removable, count, round_to, cost=None, reduce_by=None, nearest=True):
    """The fewest of `removable` that, rounded (`round_channels`), still prune `count` groups or meet the goal.

    Rounding to the nearest multiple gives channels back as often as it
    takes more, so the prefix of `removable` grows until the rounded plan
    reaches the goal (`reduce_by` of `cost`) or, without one, removes at
    least `count` groups: the total rounds toward pruning more, each layer
    to its nearest multiple. A binary search over the prefix, since a
    longer prefix rounds to at least as much in all but ties.
    """
    if reduce_by is not None:
        target = cost.total(alive) - reduce_by
        enough = lambda rounded: cost.total(without(alive, rounded)) <= target  # noqa: E731
    else:
        enough = lambda rounded: len(rounded) >= count  # noqa: E731
    lo, hi = count, len(removable)
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(round_channels(layout, alive, removable, mid, round_to, nearest)):
            hi = mid
        else:
            lo = mid + 1
    return round_channels(layout, alive, removable, lo, round_to, nearest)


def without(alive, removed):
    out = np.array(alive, dtype=bool)
    out[np.asarray(removed, dtype=np.int64)] = False
    return out


def ratio_order(scores, saved):
    """Indices ordering `scores / saved` ascending; nothing saved goes last."""
    scores = np.asarray(scores, dtype=np.float64)
    saved = np.asarray(saved, dtype=np.float64)
    ratio = np.full(len(scores), np.inf)
    pays = saved > 1e-12 * max(1.0, float(np.abs(saved).max(initial=0.0)))
    ratio[pays] = scores[pays] / saved[pays]
    return np.argsort(ratio, kind="stable")


def ranked_by_saving(scores, alive, layout, savings, rounds=8):
    """Every removable group, cheapest importance per unit of saving first.

    A greedy knapsack: the savings are recomputed from the alive set after
    each slice of about 1/`rounds` of the remaining groups goes, so a layer
    that has shrunk (and saves less per channel now) is re-ranked.
    """
    trial = np.array(alive, dtype=bool)
    order = []
    while True:
        candidates = layout.candidates(trial)
        if not len(candidates):
            break
        ranked = candidates[ratio_order(scores[candidates], savings(trial)[candidates])]
        chunk = max(1, len(ranked) // rounds)
        trial, removed = layout.remove_in_order(ranked, trial, limit=chunk)
        if not removed:
            break
        order.extend(removed)
    return order


def round_channels(layout, alive, order, count, round_to, nearest=True, max_steps=100000):
    """The first `count` groups of `order`, adjusted so every pruned layer keeps a multiple of `round_to`.

    A layer left with `q * N + r` channels (`0 < r <= N / 2`, or any `r`
    with `nearest=False`) loses its next groups in `order` (or, past it,
    any alive removable group of it) down to `q * N`; one left more than
    N / 2 above a multiple, or with fewer than N, gets its last-removed
    groups of this step back up to the multiple above. Rounding to the nearest
    multiple does not force the cut of a layer that gave up one low-ranked
    channel to take N - 1 channels the ranking would have kept (on
    ResNet-20's 16-channel layers, round_to=8 turned a step of 10% of the
    MACs into one of 20-28%). Layers created with fewer than N channels are
    exempt, and a layer that cannot be rounded (blocked channels) is left
    as it is.

    Returns:
        the list of groups to remove.
    """
    n = int(round_to)
    removed = list(order[:count])
    rank = {int(g): k for k, g in enumerate(order)}
    trial = without(alive, removed)
    stuck, restored = set(), set()
    for _ in range(max_steps):
        left = layout.channels_left(trial)
        pruned = (left % n != 0) & (left < layout.full_counts) & (layout.full_counts >= n)
        bad = [int(layer) for layer in np.flatnonzero(pruned) if int(layer) not in stuck]
        if not bad:
            break
        layer = bad[0]
        mine = set(np.unique(layout.layer_groups(layer)).tolist())
        if left[layer] >= n and (not nearest or left[layer] % n <= n / 2):  # down to the multiple below
            options = [g for g in layout.candidates(trial) if g in mine and g not in restored]
            options.sort(key=lambda g: rank.get(int(g), len(order) + int(g)))
            trial, gone = layout.remove_in_order(options, trial, limit=1)
            if gone:
                removed.extend(gone)
                continue
            if not nearest:
                stuck.add(layer)  # rounding down only: a layer that cannot go down stays as it is
                continue
        back = [g for g in reversed(removed) if g in mine]  # up: give back this step's latest removals
        if back:
            removed.remove(back[0])
            restored.add(back[0])
            trial[back[0]] = True
            continue
        stuck.add(layer)
    return removed


NORMALIZERS = ("l2", "mean")


def normalize_per_layer(scores, primary_layer, groups, norm="l2"):
    """Divides `scores[groups]` by their L2 norm or mean among groups of the same first layer.

    Molchanov et al. 2017: layers with large activations would otherwise
    dominate a global ranking. `"l2"` leaves a layer of n equal scores at
    1/sqrt(n) each, so wide layers rank lower; `"mean"` (Torch-Pruning's
    default normaliser) leaves every layer averaging 1 whatever its width.

    Args:
        scores: float array, one per channel group.
        primary_layer: mapping group -> the first layer creating its
            channels (groups missing from it are normalised together).
        groups: the groups to normalise.
        norm: `"l2"` or `"mean"`.
    """
    if norm not in NORMALIZERS:
        raise ValueError(f"norm must be one of {NORMALIZERS}, got {norm!r}")
    scores = np.asarray(scores, dtype=np.float64).copy()
    by_layer = {}
    for g in groups:
        by_layer.setdefault(primary_layer.get(int(g)), []).append(int(g))
    for members in by_layer.values():
        values = scores[members]
        scale = np.sqrt(np.sum(values ** 2)) if norm == "l2" else np.mean(values)
        if scale > 0:
            scores[members] /= scale
    return scores
