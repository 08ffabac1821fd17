"""Binary classification evaluation shared by the systems: metrics at a threshold, curves, operating points.

`binary_metrics` reports accuracy, precision, recall (sensitivity), specificity, F1 = 2TP/(2TP+FP+FN),
ROC-AUC, PR-AUC (trapezoidal area under the precision-recall curve, as the original's
``auc(recall, precision)``; average precision is reported beside it) and the confusion matrix. A
split with a single class gets ``None`` for the AUCs and a ``note`` saying so, instead of an error.
`operating_thresholds` picks thresholds on one split (Youden's J and the F1 optimum) to apply to another.
"""

import numpy as np
from sklearn import metrics as sk

SINGLE_CLASS_NOTE = "only one class in this split: ROC-AUC and PR-AUC are undefined"


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else None


def binary_metrics(y_true, probability, threshold=0.5):
    """Every metric of one split at ``threshold`` (predicted positive when ``probability >= threshold``).

    Args:
        y_true: 0/1 labels.
        probability: predicted probabilities of the positive class.
        threshold: the operating threshold.

    Returns:
        A dict of plain Python values; ratios with a zero denominator are ``None``.

    Example:

    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> m["accuracy"], m["f1"], m["roc_auc"], m["confusion_matrix"]
    (0.5, 0.5, 0.75, [[1, 1], [1, 1]])
    >>> binary_metrics([0, 0], [0.2, 0.7])["note"]
    'only one class in this split: ROC-AUC and PR-AUC are undefined'
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    probability = np.asarray(probability, "float64").ravel()
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in sk.confusion_matrix(y_true, predicted, labels=[0, 1]).ravel())
    result = {
        "n": int(len(y_true)),
        "n_positive": int(y_true.sum()),
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, len(y_true)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "roc_auc": None,
        "pr_auc": None,
        "average_precision": None,
    }
    if len(np.unique(y_true)) < 2:
        result["note"] = SINGLE_CLASS_NOTE
        return result
    precision, recall, _ = sk.precision_recall_curve(y_true, probability)
    result["roc_auc"] = float(sk.roc_auc_score(y_true, probability))
    result["pr_auc"] = float(sk.auc(recall, precision))
    result["average_precision"] = float(sk.average_precision_score(y_true, probability))
    return result


def operating_thresholds(y_true, probability):
    """Thresholds chosen on one split: ``{"youden": ..., "f1": ...}`` (``None`` with a single class).

    Youden's J maximises sensitivity + specificity - 1 over the ROC curve's thresholds; the F1
    threshold maximises F1 over the precision-recall curve's.

    Example:

    >>> operating_thresholds([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8])
    {'youden': 0.35, 'f1': 0.35}
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    probability = np.asarray(probability, "float64").ravel()
    if len(np.unique(y_true)) < 2:
        return {"youden": None, "f1": None}
    fpr, tpr, roc_thresholds = sk.roc_curve(y_true, probability)
    finite = np.isfinite(roc_thresholds)
    youden = roc_thresholds[finite][np.argmax((tpr - fpr)[finite])]
    precision, recall, pr_thresholds = sk.precision_recall_curve(y_true, probability)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return {"youden": float(youden), "f1": float(pr_thresholds[np.argmax(f1)])}


def curve_figures(y_true, probability, title):
    """ROC and precision-recall figures of one split (matplotlib ``Figure`` objects); ``()`` for a single class."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    y_true = np.asarray(y_true).astype(int).ravel()
    if len(np.unique(y_true)) < 2:
        return ()
    figures = []
    fpr, tpr, _ = sk.roc_curve(y_true, probability)
    precision, recall, _ = sk.precision_recall_curve(y_true, probability)
    for x, y, labels, area in (
        (fpr, tpr, ("false positive rate", "true positive rate"), sk.auc(fpr, tpr)),
        (recall, precision, ("recall", "precision"), sk.auc(recall, precision)),
    ):
        figure, axis = plt.subplots(figsize=(4.5, 4.5))
        axis.plot(x, y, label=f"AUC {area:.3f}")
        axis.set(xlabel=labels[0], ylabel=labels[1], title=title, xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(loc="lower right")
        figure.tight_layout()
        figures.append(figure)
        plt.close(figure)
    return tuple(figures)
