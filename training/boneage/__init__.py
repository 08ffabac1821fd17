"""Bone age: training, evaluation, prediction, data and the synthetic phantom for the bone-age models."""
