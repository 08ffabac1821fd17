"""The nodule_segmentation system's commands, data and evaluation."""
