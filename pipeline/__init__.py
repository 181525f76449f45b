"""trajforge: manufacture verified agent trajectories for training tool-using models."""

__version__ = "0.1.0"
