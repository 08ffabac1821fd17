"""Bone-age evaluation: errors in months (overall and per sex), prediction tables, agreement plots."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def regression_metrics(true_months, predicted_months, male=None, prefix=""):
    """MAE, RMSE and Pearson r in months, and MAE per sex when ``male`` is given.

    Args:
        true_months, predicted_months: 1-D arrays of bone ages in months.
        male: optional 1-D array of 1.0 (male) / 0.0 (female).
        prefix: prepended to every key (e.g. ``"test_"``).

    Returns:
        Dict of plain Python floats and ints.

    Example:

    >>> regression_metrics([10.0, 20.0, 30.0], [12.0, 18.0, 33.0], prefix="test_")["test_mae_months"]
    2.3333333333333335
    """
    true_months = np.asarray(true_months, dtype=np.float64).ravel()
    predicted_months = np.asarray(predicted_months, dtype=np.float64).ravel()
    errors = predicted_months - true_months
    metrics = {
        "mae_months": float(np.abs(errors).mean()),
        "rmse_months": float(np.sqrt(np.mean(errors**2))),
        "correlation": float(np.corrcoef(true_months, predicted_months)[0, 1]) if len(errors) > 1 else float("nan"),
        "n": int(len(errors)),
    }
    if male is not None:
        male = np.asarray(male).ravel()
        for code, label in ((1.0, "male"), (0.0, "female")):
            chosen = male == code
            metrics[f"mae_months_{label}"] = float(np.abs(errors[chosen]).mean()) if chosen.any() else None
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def predictions_table(table, predicted_months, predicted_tta=None):
    """The original's prediction CSV columns, plus sex and (optionally) the TTA prediction."""
    frame = pd.DataFrame(
        {
            "image_id": table["id"].to_numpy(),
            "male": table["male"].to_numpy(),
            "true_bone_age": table["boneage"].to_numpy(),
            "predicted_bone_age": np.asarray(predicted_months).ravel(),
        }
    )
    frame["absolute_error"] = (frame["predicted_bone_age"] - frame["true_bone_age"]).abs()
    if predicted_tta is not None:
        frame["predicted_bone_age_tta"] = np.asarray(predicted_tta).ravel()
    return frame


def agreement_figures(true_months, predicted_months, title):
    """Predicted against true (with the identity line) and a Bland-Altman plot.

    Returns:
        ``(scatter_figure, bland_altman_figure)``.
    """
    true_months = np.asarray(true_months, dtype=np.float64).ravel()
    predicted_months = np.asarray(predicted_months, dtype=np.float64).ravel()
    scatter = Figure(figsize=(5, 5))
    axes = scatter.add_subplot()
    axes.scatter(true_months, predicted_months, s=10, alpha=0.6)
    low, high = (
        float(min(true_months.min(), predicted_months.min())),
        float(max(true_months.max(), predicted_months.max())),
    )
    axes.plot([low, high], [low, high], "k--", linewidth=1, label="identity")
    axes.set_xlabel("true bone age (months)")
    axes.set_ylabel("predicted bone age (months)")
    axes.set_title(f"{title}: MAE {np.abs(predicted_months - true_months).mean():.1f} months")
    axes.legend()

    mean = (true_months + predicted_months) / 2
    difference = predicted_months - true_months
    bias, spread = difference.mean(), 1.96 * difference.std(ddof=1) if len(difference) > 1 else 0.0
    bland_altman = Figure(figsize=(6, 4))
    axes = bland_altman.add_subplot()
    axes.scatter(mean, difference, s=10, alpha=0.6)
    for level, style, label in (
        (bias, "r-", f"bias {bias:.1f}"),
        (bias + spread, "r--", f"+1.96 SD {bias + spread:.1f}"),
        (bias - spread, "r--", f"-1.96 SD {bias - spread:.1f}"),
    ):
        axes.axhline(level, color=style[0], linestyle=style[1:], linewidth=1, label=label)
    axes.set_xlabel("mean of true and predicted (months)")
    axes.set_ylabel("predicted - true (months)")
    axes.set_title(f"{title}: Bland-Altman")
    axes.legend(fontsize="small")
    return scatter, bland_altman
