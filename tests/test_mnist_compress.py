"""Real data: MATLAB's digits CNN on MNIST, compressed by half.

MNIST comes through Keras's own loader from ../shared/data (see conftest).
"""

import keras
import keras_taylor as kt
from keras_taylor import datasets, reference_models

from conftest import shared_data_path


def test_compress_digits_cnn_on_mnist_halves_learnables_within_accuracy():
    shared_data_path("mnist.npz")
    keras.utils.set_random_seed(7)
    (x_train, y_train), (x_test, y_test) = datasets.load("mnist")
    x_train, y_train = x_train[:8000], y_train[:8000]
    model = reference_models.digits_cnn()
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0)
    baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert baseline > 0.95

    # Seeded: one epoch of fine-tuning per step leaves a spread of about a
    # point between shuffles (seeds 0-3: 96.6-97.4%, baseline 96.6%), and an
    # unseeded run's shuffles follow whatever drew on the global RNG before.
    pruned, info = kt.compress(
        model, (x_train, y_train), goal=0.5, increment=0.15, fine_tune_epochs=1,
        score_batches=10, batch_size=128, verbose=0, seed=0,
    )
    accuracy = pruned.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    learnables = sum(int(w.numpy().size) for w in pruned.trainable_weights)
    original = sum(int(w.numpy().size) for w in model.trainable_weights)
    assert info.stop_reason == "Learnables reduction goal reached."
    assert 1 - learnables / original >= 0.45
    assert accuracy >= baseline - 0.015, (baseline, accuracy)
