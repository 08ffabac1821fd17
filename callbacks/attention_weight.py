"""The dynamic attention-supervision weight of `modeling.losses.segmentation.ImprovedCombinedLoss`, per epoch."""

import keras


class AttentionWeightSchedule(keras.callbacks.Callback):
    """Set the loss's ``current_attention_weight`` to ``loss.weight_at(epoch)`` at each epoch's start.

    The weight is a non-trainable variable read inside the compiled step, so it works in ``fit``
    and, computed from the epoch index, continues correctly after `keras.callbacks.BackupAndRestore`
    resumes a run. JAX compiles a variable the loss owns as a constant, so on JAX the train and
    test steps are rebuilt whenever the value changes (until the weight reaches its floor).

    Args:
        loss: an `ImprovedCombinedLoss` (anything with ``weight_at(epoch)`` and
            ``current_attention_weight``).
        verbose: print the weight when it changes.

    Example:

    >>> from modeling.losses import ImprovedCombinedLoss
    >>> loss = ImprovedCombinedLoss(total_epochs=10)
    >>> schedule = AttentionWeightSchedule(loss)
    >>> schedule.on_epoch_begin(4)
    >>> round(float(loss.current_attention_weight.numpy()), 4)
    0.1
    """

    def __init__(self, loss, verbose=0):
        super().__init__()
        self.loss, self.verbose = loss, verbose

    def on_epoch_begin(self, epoch, logs=None):
        value = float(self.loss.weight_at(epoch))
        if abs(float(keras.ops.convert_to_numpy(self.loss.current_attention_weight)) - value) < 1e-12:
            return
        self.loss.current_attention_weight.assign(value)
        if keras.backend.backend() == "jax" and self.model is not None:
            self.model.make_train_function(force=True)
            self.model.make_test_function(force=True)
        if self.verbose:
            print(f"Epoch {epoch + 1}: attention supervision weight {value:.4f}")
