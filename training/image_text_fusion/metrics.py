"""Per-task metrics (accuracy, macro F1, one-vs-rest AUC, confusion matrix) and McNemar's test.

Example:

>>> import numpy as np
>>> m = task_metrics(np.array([0, 1, 1]), np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
>>> m["accuracy"], m["confusion_matrix"]
(0.6666666666666666, [[1, 0], [1, 1]])
>>> round(mcnemar([True] * 10, [False] * 10)["p_value"], 4)
0.002
"""

import numpy as np
from scipy.special import softmax
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score


def task_metrics(labels, logits):
    """Accuracy, macro F1, OvR macro AUC (None when a class is absent) and the confusion matrix."""
    labels, logits = np.asarray(labels), np.asarray(logits)
    predictions = logits.argmax(-1)
    classes = list(range(logits.shape[-1]))
    probabilities = softmax(logits, axis=-1)
    try:
        if len(classes) == 2:
            auc = float(roc_auc_score(labels, probabilities[:, 1]))
        else:
            auc = float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=classes))
    except ValueError:  # a class missing from the labels
        auc = None
    auc = None if auc is None or np.isnan(auc) else auc
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
        "auc_ovr": auc,
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
    }


def mcnemar(correct_a, correct_b):
    """Exact McNemar test on paired correctness: the discordant counts and a two-sided binomial p-value."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p_value = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p_value)}
