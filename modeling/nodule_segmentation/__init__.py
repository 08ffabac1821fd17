"""The nodule_segmentation system's models (registered when this package is imported)."""
