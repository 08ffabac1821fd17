"""The image_text_fusion system's models (registered when this package is imported)."""
