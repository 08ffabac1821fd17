"""The volume_fusion system's commands, data and evaluation."""
