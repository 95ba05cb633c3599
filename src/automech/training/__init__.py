"""Training: the loop shared by every gradient-trained mechanism."""

from automech.training.trainer import SCHEDULES, GradientMethod, schedule

__all__ = ["GradientMethod", "schedule", "SCHEDULES"]
