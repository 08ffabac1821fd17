"""Learning-curve figures."""

from matplotlib.figure import Figure

_PANELS = (
    ("mae", "Training and validation MAE", "Model Mean Absolute Error (MAE)"),
    ("loss", "Training and validation loss", "Model Loss"),
)


def plot_history(history):
    """Learning curves as the original drew them, returned instead of shown.

    One figure per quantity present: ``mae`` and ``loss`` (training as blue
    dots, validation ``val_<key>`` as a red line).

    Args:
        history: a `keras.callbacks.History` or its ``history`` dict.

    Returns:
        List of `matplotlib.figure.Figure`; save them with ``fig.savefig(path)``.

    Example:

    >>> figures = plot_history({"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]})
    >>> [f.axes[0].get_title() for f in figures]
    ['Training and validation loss']
    """
    logs = getattr(history, "history", history)
    if "loss" not in logs:
        raise ValueError(f"History has no 'loss' key; keys: {sorted(logs)}.")
    figures = []
    for key, title, suptitle in _PANELS:
        if key not in logs:
            continue
        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        epochs = range(1, len(logs[key]) + 1)
        axes.plot(epochs, logs[key], "bo", label=f"Training {key}")
        if f"val_{key}" in logs:
            axes.plot(epochs, logs[f"val_{key}"], "r", label=f"Validation {key}")
        axes.set_title(title)
        axes.set_xlabel("Epoch")
        axes.set_ylabel(key)
        axes.legend()
        figure.suptitle(suptitle)
        figures.append(figure)
    return figures
