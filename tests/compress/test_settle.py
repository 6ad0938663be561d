"""Scoring until the next step's choice settles (kt.compress without score_batches)."""


import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_taylor as kt

from keras_taylor.compression import settle
L = keras.layers


class ScriptedModel:
    """Answers planned_prunables from a script keyed by batches scored so far."""

    def __init__(self, script):
        self.script, self.scored, self.asked = script, 0, []

    def score(self, *batch):
        self.scored += 1

    def planned_prunables(self, max_to_prune, learnables_reduction):
        self.asked.append(self.scored)
        return np.array(sorted(self.script(self.scored)), dtype=np.int64)


def run(script, available=100):
    pm = ScriptedModel(script)
    count = settle.score_until_settled(pm, ((i, i) for i in range(available)), 0.1, pm.score)
    return count, pm


def test_stops_when_the_choice_agrees_with_the_one_on_half_the_batches():
    choices = {4: {1, 2, 3, 4, 5}, 8: {1, 2, 3, 4, 6}, 16: {1, 2, 3, 4, 6}}
    count, pm = run(lambda n: choices[n])
    assert count == 16 and pm.asked == [4, 8, 16]  # 4 vs 8 agree on 4/6 only


def test_agreement_of_exactly_the_threshold_stops():
    choices = {4: {1, 2, 3, 4}, 8: {1, 2, 3, 4, 5}}  # Jaccard 4/5
    assert run(lambda n: choices[n])[0] == 8


def test_empty_choices_agree():
    assert run(lambda n: set())[0] == 8


def test_a_choice_that_never_settles_scores_every_batch():
    count, pm = run(lambda n: {n}, available=40)
    assert count == 40 and pm.asked == [4, 8, 16, 32]


def test_fewer_batches_than_the_first_check_are_all_scored():
    count, pm = run(lambda n: set(), available=3)
    assert count == 3 and pm.asked == []


def small_cnn():
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="c1")(inputs)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="c2")(x)
    outputs = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_planned_prunables_changes_nothing_and_is_what_update_prunables_masks():
    keras.utils.set_random_seed(0)
    pm = kt.TaylorPrunableModel(small_cnn())
    pm.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    pm.update_score(rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 16))
    scores, alive = pm.scores.copy(), pm.alive.copy()
    planned = pm.planned_prunables(None, learnables_reduction=0.2)
    assert len(planned) > 0
    np.testing.assert_array_equal(pm.scores, scores)
    np.testing.assert_array_equal(pm.alive, alive)
    assert pm.update_prunables(None, learnables_reduction=0.2) == len(planned)
    assert set(np.flatnonzero(alive & ~pm.alive)) == set(planned.tolist())
    with pytest.raises(kt.InvalidArgumentError, match="max_to_prune"):
        pm.planned_prunables(0)


def count_scored_batches(monkeypatch):
    calls = []
    original = kt.TaylorPrunableModel.update_score

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(kt.TaylorPrunableModel, "update_score", counting)
    return calls


def repeated_batch(batches):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 8, 8, 1)).astype("float32")
    return tf.data.Dataset.from_tensors((x, rng.integers(0, 3, 8))).repeat(batches)


def test_compress_stops_the_first_scoring_pass_once_the_choice_settles(monkeypatch):
    # The same batch 40 times: the choice on 8 batches is the one on 4.
    calls = count_scored_batches(monkeypatch)
    kt.compress(small_cnn(), repeated_batch(40), goal=0.3, increment=0.1, max_iterations=1, verbose=0, seed=0)
    assert len(calls) == 8
    # Without fine-tuning every step scores afresh, each until settled.
    calls.clear()
    kt.compress(small_cnn(), repeated_batch(40), goal=0.3, increment=0.1, fine_tune_epochs=0,
                max_iterations=2, verbose=0, seed=0)
    assert len(calls) == 16


def test_compress_with_score_batches_scores_exactly_that_many(monkeypatch):
    calls = count_scored_batches(monkeypatch)
    kt.compress(small_cnn(), repeated_batch(40), goal=0.3, increment=0.1, max_iterations=2,
                score_batches=5, verbose=0, seed=0)
    assert len(calls) == 10
