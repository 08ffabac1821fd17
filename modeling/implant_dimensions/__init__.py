"""The implant_dimensions system's models (registered when this package is imported)."""
