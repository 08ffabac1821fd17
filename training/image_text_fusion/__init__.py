"""The image_text_fusion system's commands, data and evaluation."""
