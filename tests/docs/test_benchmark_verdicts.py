"""The rules that turn benchmark measurements into the verdicts docs/benchmarks.md prints.

Pure functions on synthetic measurements: no model is trained and nothing is
timed here (the benchmarks themselves run with `python -m benchmarks.run`).
"""

import math

import pytest

from benchmarks import _common, criteria, inference, run

# --- inference: speedup against FLOPs, and what a runtime's fixed cost allows


def _linear_runtime(fixed, work, flops):
    """Latency of a model of `flops` on a runtime that is `fixed + work * share of the FLOPs`."""
    return fixed + work * flops / 100.0


def _inference_results(fixed=3.0, work=1.0, pruned_flops=(75.0, 50.0), speed_bonus=1.0):
    rows = {"original": {"flops": 100.0}, inference.REFERENCE: {"flops": 25.0}}
    for i, f in enumerate(pruned_flops):
        rows[f"{30 + 20 * i}%"] = {"flops": f}
    for name, r in rows.items():
        latency = _linear_runtime(fixed, work, r["flops"])
        if name not in ("original", inference.REFERENCE):
            latency /= speed_bonus
        r["keras_b1"] = latency
        r["keras_b32"] = latency
    return {"net": rows}


def test_latency_split_recovers_the_fixed_share_and_a_ceiling_equal_to_an_ideal_speedup():
    split = inference.latency_split(_inference_results(fixed=3.0, work=1.0), ("keras_b1",))
    assert [(row[1], row[2]) for row in split] == [("30%", "keras_b1"), ("50%", "keras_b1")]
    for _, _, _, fixed_share, speedup, ceiling in split:
        assert fixed_share == pytest.approx(0.75)
        assert speedup == pytest.approx(ceiling)


def test_latency_split_skips_models_without_a_half_width_twin():
    results = _inference_results()
    del results["net"][inference.REFERENCE]
    assert inference.latency_split(results, ("keras_b1",)) == []


def test_speedup_ratios_leave_out_the_original_and_the_reference():
    ratios = inference.speedup_ratios(_inference_results(fixed=0.0, work=1.0), ("keras_b1",))
    assert [r[1] for r in ratios] == ["30%", "50%"]
    # No fixed cost: the speedup is the FLOPs ratio.
    assert [r[5] for r in ratios] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("fixed_share", [0.1, 0.26, 0.5, 0.8])
def test_target_reach_is_where_an_ideal_model_meets_the_target_exactly(fixed_share):
    q = inference.target_reach(fixed_share)
    ideal_speedup = 1 / (fixed_share + (1 - fixed_share) / q)
    assert ideal_speedup == pytest.approx(inference.TARGET * q)
    beyond = q * 1.05
    assert 1 / (fixed_share + (1 - fixed_share) / beyond) < inference.TARGET * beyond


def test_target_reach_without_fixed_cost_is_unbounded():
    assert inference.target_reach(0.0) == math.inf


def test_misses_beyond_reach_counts_only_misses_past_their_runtime_reach():
    # Fixed share 0.75 -> reach 1 + 0.25 / 0.75 = 1.33: the 50% model (FLOPs ratio 2) is beyond it.
    results = _inference_results(fixed=3.0, work=1.0)
    ratios = inference.speedup_ratios(results, ("keras_b1",))
    split = inference.latency_split(results, ("keras_b1",))
    beyond = inference.misses_beyond_reach(ratios, split)
    assert [(r[1], r[2]) for r in beyond] == [("50%", "keras_b1")]
    assert "1 lies beyond its runtime's reach" in inference.beyond_sentence(ratios, beyond)
    # A miss inside the reach is not excused: slow the 30% model down below the target.
    results["net"]["30%"]["keras_b1"] *= 1.3
    ratios = inference.speedup_ratios(results, ("keras_b1",))
    misses = [r for r in ratios if r[5] < inference.TARGET]
    assert len(misses) == 2
    assert [r[1] for r in inference.misses_beyond_reach(ratios, split)] == ["50%"]


def test_beyond_sentence_is_empty_when_every_measurement_meets_the_target():
    ratios = inference.speedup_ratios(_inference_results(fixed=0.0), ("keras_b1",))
    assert inference.beyond_sentence(ratios, []) == ""


def test_reference_range_quotes_the_half_width_twins():
    text = inference.reference_range(_inference_results(fixed=3.0, work=1.0))
    # Original 4.0, half width 3.25: speedup 1.23 for a FLOPs ratio of 4.
    assert text.startswith(f"{4.0 / 3.25 / 4:.2f}-")


# --- criteria: Taylor against L1 and random, over seeds and workloads


def _criteria_rows(seeds_by_workload, accuracy):
    rows = []
    for workload, seeds in seeds_by_workload.items():
        for seed in range(seeds):
            for criterion in ("taylor", "l1", "random"):
                for target in criteria.REDUCTIONS:
                    value = accuracy(workload, criterion, target, seed)
                    rows.append({"workload": workload, "seed": seed, "criterion": criterion, "target": target,
                                 "reduction": target, **{phase: value for phase in criteria.PHASES}})
    return rows


def _taylor_best(workload, criterion, target, seed):
    return {"taylor": 0.9, "l1": 0.8, "random": 0.7}[criterion] - target / 10 + seed / 1000


def test_verdicts_meet_when_taylor_beats_random_everywhere_and_l1_at_large_reductions():
    rows = _criteria_rows({"a": 3, "b": 10}, _taylor_best)
    out = criteria.verdicts(rows)
    assert len(out) == 2 * len(criteria.PHASES)
    assert all(v["met"] for v in out)
    assert {v["beats_random"] for v in out} == {"4/4"}
    # Pairs are counted per workload's own seeds (3 and 10), not across workloads.
    assert {v["workload"]: v["l1_pairs"] for v in out} == {"a": "6/6", "b": "20/20"}


def test_verdicts_fail_when_random_wins_one_reduction():
    def random_wins_at_70(workload, criterion, target, seed):
        if criterion == "random" and target == 0.7 and workload == "b":
            return 0.95
        return _taylor_best(workload, criterion, target, seed)

    out = {v["workload"]: v for v in criteria.verdicts(_criteria_rows({"a": 2, "b": 2}, random_wins_at_70))
           if v["phase"] == "oneshot"}
    assert out["a"]["met"] and not out["b"]["met"]
    assert out["b"]["beats_random"] == "3/4"
    assert out["b"]["random_closest"].endswith("at 70%")


def test_margin_with_error_is_the_difference_of_means_with_its_standard_error():
    rows = [{"workload": "w", "criterion": c, "target": 0.5, "oneshot": v}
            for c, values in (("taylor", (0.5, 0.7)), ("random", (0.1, 0.3))) for v in values]
    # Means 0.6 and 0.2; both sample variances 0.02, so the standard error is sqrt(0.01 + 0.01).
    assert criteria._margin_with_error(rows, "w", "oneshot", 0.5) == "+40.0 ± 14.1 at 50%"
    one_seed = [rows[0], rows[2]]
    assert criteria._margin_with_error(one_seed, "w", "oneshot", 0.5) == "+40.0 at 50%"


def test_rows_from_log_reads_back_printed_rows_in_reduction_order():
    log = "\n".join([
        "[digits-mnist] cached baseline digits-mnist-123.weights.h5: accuracy 98.50%",
        *(f"[digits-mnist] seed 1 taylor  {100 * t:.1f}% fewer learnables: one-shot  {90 - i:.2f}%  "
          f"BN re-estimated  {95 - i:.2f}%  fine-tuned  {97 - i:.2f}%" for i, t in enumerate(criteria.REDUCTIONS)),
        "some other line",
    ])
    rows, baselines = criteria.rows_from_log(log)
    assert baselines == {"digits-mnist": pytest.approx(0.985)}
    assert [r["target"] for r in rows] == list(criteria.REDUCTIONS)
    assert rows[2] == {"workload": "digits-mnist", "seed": 1, "criterion": "taylor", "target": 0.5,
                       "reduction": pytest.approx(0.5), "oneshot": pytest.approx(0.88),
                       "recalibrated": pytest.approx(0.93), "finetuned": pytest.approx(0.95)}


# --- the suite's summary and the docs file


def test_parse_foreign_reads_the_overhead_and_strip_speed_verdicts():
    out = "ratio  1.053\nvs keras ratio  0.742\nResNet50: strip 1.2 s clone 1.0 s ratio 2.30\n"
    rows = run._parse_foreign("overhead", out) + run._parse_foreign("strip_speed", out)
    assert [(r["result"], r["met"]) for r in rows] == [("1.053", "yes"), ("0.742", ""), ("2.30", "no")]


def test_write_section_replaces_its_own_section_and_keeps_the_others(tmp_path):
    path = tmp_path / "benchmarks.md"
    _common.write_section("a", "## A\n\nfirst", path=path)
    _common.write_section("b", "## B\n\nsecond", path=path)
    _common.write_section("a", "## A\n\nthird", path=path)
    text = path.read_text()
    assert "third" in text and "first" not in text and "second" in text
    assert text.index("## A") < text.index("## B")


# --- torch_pruning_macs: accuracy compared where keras-taylor first reaches each MACs target


def test_macs_targets_are_read_where_keras_taylor_first_reaches_them():
    from benchmarks import torch_pruning_macs

    def seed(kt_reductions, kt_acc, tp_acc):
        return {"keras": [{"iteration": i + 1, "macs_reduction": r, "accuracy": a}
                          for i, (r, a) in enumerate(zip(kt_reductions, kt_acc))],
                "torch": [{"iteration": i + 1, "macs_reduction": r + 0.01, "accuracy": a}
                          for i, (r, a) in enumerate(zip(kt_reductions, tp_acc))]}

    runs = [seed([0.12, 0.31, 0.52], [0.7, 0.6, 0.5], [0.6, 0.6, 0.4]),
            seed([0.29, 0.35, 0.49], [0.8, 0.7, 0.6], [0.7, 0.5, 0.6])]
    rows = torch_pruning_macs.at_targets(runs, [0.3, 0.5, 0.7])
    assert [r["target"] for r in rows] == [0.3, 0.5]  # 0.7 was never reached: no row, no verdict
    first, second = rows
    assert first["iteration"] == [2, 2]  # 0.29 is below 0.3 by more than the tolerance
    assert first["kt_acc"] == pytest.approx(0.65) and first["tp_acc"] == pytest.approx(0.55)
    assert second["iteration"] == [3]  # the second seed never reached 0.5
    assert second["kt_range"] == (0.5, 0.5) and second["tp_reduction"] == pytest.approx(0.53)


def test_each_keras_taylor_variant_writes_its_own_section_and_old_names_stay():
    from benchmarks.torch_pruning_macs import section_name

    assert section_name({}) == "torch_pruning_macs"
    assert section_name({"ranking": "importance"}) == "torch_pruning_macs_importance"
    assert section_name({"score_batches": 10}) == "torch_pruning_macs_fresh_scores"
    assert section_name({"normalize": "l2"}) == "torch_pruning_macs_normalize_l2"
    assert section_name({"recalibration_batches": 0}) == "torch_pruning_macs_recalibration_0"
