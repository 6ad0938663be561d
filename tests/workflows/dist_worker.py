"""Subprocess body for the distribution tests (not collected by pytest).

usage: python dist_worker.py MODE OUT.npz [TF_CONFIG json]
MODE: single | mirrored | multiworker
Fits a TaylorPrunableModel with a zero learning rate on fixed data and saves
its accumulated Taylor scores, so the modes can be compared exactly.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
mode, out = sys.argv[1], sys.argv[2]
if mode == "multiworker":
    os.environ["TF_CONFIG"] = sys.argv[3]

import tensorflow as tf  # noqa: E402

if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

import keras  # noqa: E402
import keras_taylor as kt  # noqa: E402

L = keras.layers
strategy = {
    "single": tf.distribute.get_strategy,
    "mirrored": lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    "multiworker": tf.distribute.MultiWorkerMirroredStrategy,
}[mode]()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8, 8, 2)).astype("float32")
y = rng.normal(size=(64, 3)).astype("float32")
with strategy.scope():
    inputs = keras.Input((8, 8, 2))
    h = L.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    # No BatchNormalization: its batch statistics are per replica, so the
    # activations (and scores) would legitimately differ from one device.
    h = L.Conv2D(6, 3, padding="same")(h)
    model = keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(L.ReLU()(h))))
    pm = kt.TaylorPrunableModel(model)
    pm.compile(keras.optimizers.SGD(0.0), "mse")
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
if mode == "multiworker":
    # Keras 3.15's fit() cannot feed MultiWorkerMirroredStrategy on CPU (it
    # fails converting PerReplica inputs, with or without keras_taylor), so
    # the model's own train_step is driven through strategy.run.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist = strategy.experimental_distribute_dataset(ds.with_options(options))
    with strategy.scope():
        pm.optimizer.build(pm.trainable_variables)

    @tf.function
    def step(batch):
        strategy.run(pm.train_step, args=(batch,))

    for batch in dist:
        step(batch)
else:
    pm.fit(ds, epochs=1, verbose=0)
np.savez(out, scores=pm.scores, count=pm.score_count.numpy(), replicas=strategy.num_replicas_in_sync)
print(json.dumps({"count": float(pm.score_count.numpy()), "replicas": strategy.num_replicas_in_sync}))
