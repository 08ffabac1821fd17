"""Per-case segmentation metrics and the original analyser's attention-segmentation alignment figures.

* `case_metrics`: Dice, IoU, precision, recall and the 95 % Hausdorff distance of one thresholded
  prediction. Empty masks are handled, never NaN: both empty is a perfect case (1, 1, 1, 1, 0 px);
  one empty gives 0 for the overlaps and the image diagonal as the distance; recall of an empty
  mask is 1 and precision of an empty prediction is 1 only when the mask is empty too.
* `alignment_metrics`: ``AttentionSegmentationAnalyzer``'s figures: peak (top 10 %) overlaps
  attention-GT, segmentation-GT and attention-segmentation, the three Pearson correlations,
  centre-of-mass distances in pixels and the attention range. Defined only for non-empty masks.

Example:

>>> mask = np.zeros((8, 8)); mask[2:4, 2:4] = 1
>>> {k: round(v, 3) for k, v in case_metrics(mask, mask).items() if k in ("dice", "hd95")}
{'dice': 1.0, 'hd95': 0.0}
"""

import numpy as np
from scipy import ndimage

PEAK_PERCENTILE = 90.0


def _surface(mask):
    return mask & ~ndimage.binary_erosion(mask)


def hausdorff95(mask, prediction):
    """95th percentile of the symmetric surface distances in pixels (both masks non-empty)."""
    a, b = _surface(mask), _surface(prediction)
    to_b = ndimage.distance_transform_edt(~b)[a]
    to_a = ndimage.distance_transform_edt(~a)[b]
    return float(np.percentile(np.concatenate([to_b, to_a]), 95))


def case_metrics(mask, probability, threshold=0.5):
    """Metrics of one case: ``mask`` (H, W) in {0, 1}, ``probability`` (H, W) in [0, 1]."""
    truth, predicted = np.asarray(mask) > 0.5, np.asarray(probability) > threshold
    tp = float(np.sum(truth & predicted))
    n_truth, n_predicted = float(truth.sum()), float(predicted.sum())
    if n_truth == 0 and n_predicted == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "hd95": 0.0, "empty_mask": True}
    diagonal = float(np.hypot(*truth.shape))
    return {
        "dice": 2 * tp / (n_truth + n_predicted),
        "iou": tp / (n_truth + n_predicted - tp),
        "precision": tp / n_predicted if n_predicted else 0.0,
        "recall": tp / n_truth if n_truth else 1.0,
        "hd95": hausdorff95(truth, predicted) if n_truth and n_predicted else diagonal,
        "empty_mask": n_truth == 0,
    }


def pearson(a, b):
    """Pearson correlation of two maps (flattened); 0 when either is constant, as in the original."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _centre_of_mass(weights):
    total = weights.sum()
    if total <= 0:
        return np.array([weights.shape[0] / 2, weights.shape[1] / 2])
    rows, cols = np.indices(weights.shape)
    return np.array([(rows * weights).sum() / total, (cols * weights).sum() / total])


def alignment_metrics(mask, attention, probability):
    """The analyser's figures for one case with a non-empty ``mask`` (all maps (H, W))."""
    truth = np.asarray(mask) > 0.5
    attention, probability = np.asarray(attention, "float64"), np.asarray(probability, "float64")
    a_peak = attention > np.percentile(attention, PEAK_PERCENTILE)
    s_peak = probability > np.percentile(probability, PEAK_PERCENTILE)
    n_truth = max(float(truth.sum()), 1.0)
    gt = truth.astype("float64")
    centre_gt = _centre_of_mass(gt)
    return {
        "attention_gt_overlap": float((a_peak & truth).sum() / n_truth),
        "segmentation_gt_overlap": float((s_peak & truth).sum() / n_truth),
        "attention_segmentation_overlap": float((a_peak & s_peak).sum() / max(float(a_peak.sum()), 1.0)),
        "attention_gt_correlation": pearson(attention, gt),
        "segmentation_gt_correlation": pearson(probability, gt),
        "attention_segmentation_correlation": pearson(attention, probability),
        "attention_gt_distance_px": float(np.linalg.norm(_centre_of_mass(attention) - centre_gt)),
        "segmentation_gt_distance_px": float(np.linalg.norm(_centre_of_mass(probability) - centre_gt)),
        "attention_min": float(attention.min()),
        "attention_max": float(attention.max()),
    }


def summarize(rows, size, reference_size=512):
    """Means over cases of per-case metric dicts; distances also at ``reference_size`` px scale.

    Cases with an empty mask are counted (``n_empty_masks``) and take part in the segmentation
    means; the alignment means use the non-empty cases only (the figures need a target).
    """
    summary = {"n_cases": len(rows), "n_empty_masks": int(sum(bool(r.get("empty_mask")) for r in rows))}
    keys = sorted({key for row in rows for key, value in row.items() if isinstance(value, float)})
    for key in keys:
        values = [row[key] for row in rows if key in row]
        summary[key] = float(np.mean(values)) if values else None
    for key in ("attention_gt_distance_px", "segmentation_gt_distance_px"):
        if summary.get(key) is not None:
            summary[key.replace("_px", f"_px_at_{reference_size}")] = summary[key] * reference_size / size
    if "attention_min" in summary:
        summary["attention_min"] = float(min(r["attention_min"] for r in rows if "attention_min" in r))
        summary["attention_max"] = float(max(r["attention_max"] for r in rows if "attention_max" in r))
    return summary
