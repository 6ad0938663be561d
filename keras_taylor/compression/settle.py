"""Scoring until more batches would not change the next pruning step."""

# Scoring without score_batches stops when the groups the next step would
# prune agree this well between n and 2n batches (first compared at 4 and 8:
# on the CIFARNet twin, 2-4 batches still disagree with a full pass on a
# third of the choice; 16 of 32 batches matched it exactly).
SETTLE_FIRST_CHECK = 4
SETTLE_AGREEMENT = 0.8


def score_until_settled(pm, batches, learnables_reduction, score, prune_args=None):
    """Scores batches until more of them would not change the next step.

    After `SETTLE_FIRST_CHECK` batches and then each time their number
    doubles, asks `pm` which channel groups a step removing
    `learnables_reduction` would prune; stops once that choice agrees
    (Jaccard index >= `SETTLE_AGREEMENT`) with the one made on half as many
    batches, or when `batches` run out. A pass over a large dataset before
    the first step would cost about a training epoch, while the choice
    can settle much sooner (on the CIFARNet twin, 16 batches of 128 chose
    what 32 did).

    Args:
        pm: a `TaylorPrunableModel`.
        batches: iterable of `(x, y, ...)` tuples.
        learnables_reduction: the step, as for `pm.update_prunables`.
        score: called with each batch's tuple; accumulates its scores.
        prune_args: the step's arguments of `pm.planned_prunables` when
            they are other than `learnables_reduction` (another cost).

    Returns:
        The number of batches scored.
    """
    count, check, previous = 0, SETTLE_FIRST_CHECK, None
    for batch in batches:
        score(*batch)
        count += 1
        if count < check:
            continue
        plan = prune_args or dict(learnables_reduction=learnables_reduction)
        chosen = set(pm.planned_prunables(None, **plan).tolist())
        if previous is not None and _jaccard(chosen, previous) >= SETTLE_AGREEMENT:
            break
        previous, check = chosen, 2 * check
    return count


def _jaccard(a, b):
    return len(a & b) / len(a | b) if a or b else 1.0
