"""The volume_fusion system's models (registered when this package is imported)."""
