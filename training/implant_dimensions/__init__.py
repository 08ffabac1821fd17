"""The implant_dimensions system's commands, data and evaluation."""
