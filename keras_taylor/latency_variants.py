"""The stripped variants `latency_profile` times: which channels each one keeps.

A latency profile is fitted to whole-model timings of a few stripped
variants of the model (see `keras_taylor.profile`); this module chooses
them, as alive sets over the model's channel groups, from the unpruned
model down to heavy pruning.
"""

import numpy as np

from keras_taylor import accounting, pruner
from keras_taylor.channel_tile import SMALLEST

LOWEST_KEEP = 0.1  # variants keep 10-100% of each layer, the range pruning goes to
LOWEST_MACS = 0.15  # the narrowest variant keeps 15% of the full MACs; the others are spread evenly up to 100%


def variants(channel_graph, count, seed, round_to=SMALLEST):
    """`count` alive sets: the full model, then variants whose MACs fall
    evenly from 100% to `LOWEST_MACS` of the full model's, alternately with
    one keep fraction for every layer (which pins the fixed part and the
    curve) and with random per-layer fractions (which tell the layer kinds
    apart); each layer a multiple of `round_to`.

    Why the MACs are the target, not the keep fractions: a layer's MACs go
    with its kept inputs times its kept outputs, about the keep fraction
    squared, so keep fractions spread evenly from 10% to 100% left no
    variant between ~55% (MobileNetV2; ResNet-20: 32%) of the full MACs
    and the unpruned model, exactly where moderate pruning lands. Each
    variant's scale of its keep fractions is found by bisection on its MACs.
    """
    layout = channel_graph.layout
    macs = accounting.layer_cost_tables(channel_graph)[0]["macs"]
    rng = np.random.default_rng(seed)
    full = np.ones(layout.num_groups, bool)
    total = macs.total(full)
    primary = np.array([m[0][0] if m else -1 for m in layout.members])
    out = [full]
    for k, target in enumerate(np.linspace(1.0, LOWEST_MACS, count)[1:]):
        shape = np.ones(layout.num_layers) if k % 2 == 0 else rng.uniform(LOWEST_KEEP, 1.0, layout.num_layers)
        candidates = rng.permutation(layout.candidates(full))
        draws = rng.random(len(candidates))

        def at(scale, shape=shape, candidates=candidates, draws=draws):
            keep = np.clip(scale * shape, LOWEST_KEEP, 1.0)
            _, removed = layout.remove_in_order(candidates[draws >= keep[primary[candidates]]], full)
            removed = pruner.round_channels(layout, full, removed, len(removed), round_to, nearest=False)
            alive = pruner.without(full, removed)
            return alive, macs.total(alive) / total

        out.append(_bisect(at, 0.0, 1.0 / shape.min(), target))
    return out


def _bisect(at, low, high, target, steps=12, within=0.01):
    """The alive set of `at(scale)` whose MACs fraction is nearest `target`
    (the fraction grows with the scale); stops once `within` of it."""
    best, best_miss = None, np.inf
    for _ in range(steps):
        if best_miss <= within:
            break
        middle = 0.5 * (low + high)
        alive, fraction = at(middle)
        if abs(fraction - target) < best_miss:
            best, best_miss = alive, abs(fraction - target)
        low, high = (middle, high) if fraction < target else (low, middle)
    return best


def narrowest(channel_graph, round_to=SMALLEST):
    """The alive set with every layer as narrow as pruning can make it: `round_to` channels
    (fewer where a layer has fewer), everything blocked kept.

    Why it is timed too: its time is nearly all the part no pruning removes
    (per-op dispatch, layers that keep their width), which the fit otherwise
    reads off variants at 15% of the MACs and more. Without it, a MobileNetV2
    profile at Keras batch 32 once put that part at 0 ms and the time in the
    per-element terms, which shrink with pruning: its 70% plans measured 2.87x
    and 2.97x where it said 3.34x (with it: 2.97x and 3.15x, the same timings).
    """
    layout = channel_graph.layout
    full = np.ones(layout.num_groups, bool)
    _, removed = layout.remove_in_order(layout.candidates(full), full)
    removed = pruner.round_channels(layout, full, removed, len(removed), round_to, nearest=False)
    return pruner.without(full, removed)
