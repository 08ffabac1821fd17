"""The original's optimizer factory, mapped onto Keras 3."""

import keras


def optimizer(lr, beta_1, beta_2, epsilon, decay, clipnorm=1.0, weight_decay=0.0):
    """Adam with per-variable gradient clipping at norm 1.0, as the original built it.

    Keras 2's legacy Adam scaled the learning rate by ``1 / (1 + decay * t)``
    (``t`` = update count). Keras 3 ignores ``decay`` with only a warning, so a
    non-zero ``decay`` becomes the identical
    ``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)`` schedule.

    Args:
        lr: learning rate.
        beta_1, beta_2, epsilon: Adam's moment decay rates and epsilon.
        decay: legacy inverse-time decay per update; 0 disables it.
        clipnorm: per-variable gradient norm clipping (the original's 1.0); ``None`` or 0 disables it.
        weight_decay: decoupled weight decay; above 0 the optimizer is `keras.optimizers.AdamW`
            (the original parsed ``--weight_decay`` but never used it).

    Returns:
        A `keras.optimizers.Adam` (``AdamW`` with weight decay) with ``clipnorm=1.0`` by default.

    Example:

    >>> opt = optimizer(1e-4, 0.9, 0.999, 1e-7, 0.0)
    >>> opt.clipnorm
    1.0
    >>> type(optimizer(1e-4, 0.9, 0.999, 1e-7, 0.0, clipnorm=None, weight_decay=1e-4)).__name__
    'AdamW'
    """
    if not lr > 0:
        raise ValueError(f"`lr` must be positive; got {lr!r}.")
    if decay < 0:
        raise ValueError(f"`decay` must be >= 0; got {decay!r}.")
    learning_rate = lr
    if decay:
        learning_rate = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=lr, decay_steps=1, decay_rate=decay
        )
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0; got {weight_decay!r}.")
    options = dict(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, clipnorm=clipnorm or None
    )
    if weight_decay:
        return keras.optimizers.AdamW(weight_decay=weight_decay, **options)
    return keras.optimizers.Adam(**options)


def default_optimizer():
    """The optimizer every original script used: ``optimizer(1e-4, 0.9, 0.999, 1e-7, 0)``."""
    return optimizer(1e-4, 0.9, 0.999, 1e-7, 0.0)
