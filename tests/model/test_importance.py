"""Importance criteria as classes; the names keep working."""

import keras
import numpy as np
import pytest

import keras_taylor as kt


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize(
    "name, cls", [("taylor", kt.importance.Taylor), ("l1", kt.importance.L1), ("random", kt.importance.Random)]
)
def test_names_map_to_the_classes(name, cls):
    pm = kt.TaylorPrunableModel(_model(), criterion=name)
    assert type(pm.criterion) is cls
    assert pm.get_config()["criterion"] == name


def test_an_object_scores_as_its_name_does():
    model = _model()
    by_name = kt.TaylorPrunableModel(model, criterion="l1")
    by_object = kt.TaylorPrunableModel(model, criterion=kt.importance.L1())
    np.testing.assert_array_equal(by_name.scores, by_object.scores)
    assert by_name.planned_prunables(3).tolist() == by_object.planned_prunables(3).tolist()


def test_an_unknown_criterion_names_the_known_ones():
    with pytest.raises(kt.InvalidArgumentError, match="'taylor', 'l1', 'random'"):
        kt.TaylorPrunableModel(_model(), criterion="l2")


@keras.saving.register_keras_serializable(package="keras_taylor_tests")
class LastFirst(kt.importance.Criterion):
    """Scores each channel group by its index: the first groups go first."""

    def __init__(self, offset=0.0):
        self.offset = offset

    def scores(self, model):
        return np.arange(model.channel_graph.num_units, dtype=float) + self.offset

    def get_config(self):
        return {"offset": self.offset}


def test_a_user_criterion_drives_pruning_and_round_trips_in_the_config():
    pm = kt.TaylorPrunableModel(_model(), criterion=LastFirst(1.0))
    chosen = pm.planned_prunables(2)
    assert chosen.tolist() == sorted(chosen.tolist())
    again = kt.TaylorPrunableModel.from_config(pm.get_config())
    assert isinstance(again.criterion, LastFirst) and again.criterion.offset == 1.0


def test_a_criterion_returning_the_wrong_shape_is_named():
    class Short(kt.importance.Criterion):
        def scores(self, model):
            return np.zeros(1)

    pm = kt.TaylorPrunableModel(_model(), criterion=Short())
    with pytest.raises(kt.InvalidArgumentError, match="one per channel group"):
        pm.update_prunables(1)


def test_taylor_without_scores_says_so():
    pm = kt.TaylorPrunableModel(_model(), criterion=kt.importance.Taylor())
    with pytest.raises(kt.PruningStateError, match="No Taylor scores"):
        pm.update_prunables(1)
