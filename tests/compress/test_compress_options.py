"""kt.compress's option groups, its state dataclass and its stop reasons."""

import inspect
import json

import pytest

import keras_taylor as kt
from keras_taylor.compression import CompressOptions, CompressState, StopReason, Target
from keras_taylor.compression import options as options_module


def test_every_keyword_of_compress_is_documented_once():
    doc = inspect.getdoc(kt.compress)
    args = doc.split("Args:")[1].split("Returns:")[0]
    for name in inspect.signature(kt.compress).parameters:
        assert args.count(f"\n    {name}: ") == 1, name


def test_every_option_group_field_is_a_keyword_of_compress():
    keywords = set(inspect.signature(kt.compress).parameters)
    groups = (options_module.Target, options_module.FineTuning, options_module.Scoring, options_module.Checkpointing)
    for group in groups:
        for field in group.__dataclass_fields__.values():
            assert field.name in keywords, field.name
            assert field.default == inspect.signature(kt.compress).parameters[field.name].default, field.name


def test_state_round_trips_through_json_with_its_stop_reason():
    state = CompressState.start(1000)
    state.iteration, state.stop_reason = 2, StopReason.THRESHOLD_REACHED
    saved = json.loads(json.dumps(state.to_json()))
    assert saved["stop_reason"] == "Validation metric threshold reached."
    again = CompressState.from_json(saved)
    assert again == state and again.stop_reason is StopReason.THRESHOLD_REACHED


def test_state_reads_a_checkpoint_written_before_rebuilt_iterations_existed():
    old = dict(
        iteration=1, original=10, need_fresh_scores=False, best_iteration=1, stop_reason=None,
        val_rows=[], train_rows=[], pruning_rows=[dict(iteration=0, num_learnables=10, learnables_reduction=0.0)],
    )
    state = CompressState.from_json(old)
    assert state.rebuilt_iterations == [] and state.iteration == 1 and state.stop_reason is None


def test_stop_reasons_are_the_sentences_compress_prints():
    assert StopReason.GOAL_REACHED == "Learnables reduction goal reached."
    assert f"{StopReason.MAX_ITERATIONS}" == "Maximum number of iterations reached."
    assert json.dumps(StopReason.NON_FINITE) == json.dumps(StopReason.NON_FINITE.value)


def test_an_invalid_option_group_is_refused_by_name():
    with pytest.raises(kt.InvalidArgumentError, match="goal"):
        CompressOptions(target=Target(goal=1.5)).check(None)


def test_an_unknown_normalize_is_refused_by_name():
    with pytest.raises(kt.InvalidArgumentError, match="normalize"):
        options_module.Scoring(normalize="max").check()
