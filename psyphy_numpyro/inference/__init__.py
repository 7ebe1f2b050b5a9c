"""Inference: MAP through SVI + AutoDelta (init / update / run) and the compile-once engine."""

from .svi import MAP, MAPState, Trials, bucket_size, negative_log_posterior, pad_trials

__all__ = ["MAP", "MAPState", "Trials", "bucket_size", "negative_log_posterior", "pad_trials"]
