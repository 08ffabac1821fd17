"""Resume after a kill across an unfreeze: the optimizer state must continue where it stopped.

The run is killed at the end of epoch 2, after `BackboneFreezer` unfroze half of both embedding
models at epoch 1 (rebuilding the optimizer); a new process resumes from the backup.
"""

import keras

from callbacks import BackboneFreezer, with_training_state
from modeling.implant_dimensions import EMBEDDING_NAMES
from tests.modeling.implant_dimensions.tiny import batch, build


class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


class OptimizerProbe(keras.callbacks.Callback):
    """The optimizer's iteration count when each epoch begins (after the restore and the freezer)."""

    def __init__(self):
        super().__init__()
        self.iterations = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.iterations[epoch] = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


def fit(backup, epochs, extra=()):
    keras.utils.set_random_seed(0)
    model = build("implant_dimensions/dual_embedding")
    model.compile(keras.optimizers.AdamW(1e-3, weight_decay=0.05, clipnorm=1.0), loss="mse", jit_compile=False)
    images, targets = batch(model, size=8, seed=1)
    freezer = BackboneFreezer(
        submodels={name: {"schedule": {1: 0.5, 2: 1.0}, "lr_multiplier": 0.1} for name in EMBEDDING_NAMES.values()}
    )
    probe = OptimizerProbe()
    callbacks = [*with_training_state([freezer, probe], backup), *extra]
    try:
        model.fit(images, targets, batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        pass
    return probe


def test_resume_after_a_kill_across_an_unfreeze_continues_the_optimizer(tmp_path):
    fit(tmp_path / "backup", epochs=4, extra=[Kill()])
    resumed = fit(tmp_path / "backup", epochs=4)
    assert min(resumed.iterations) == 2  # resumed at the third epoch
    assert resumed.iterations[2] == 2 * 2  # two epochs of two steps were done before the kill
