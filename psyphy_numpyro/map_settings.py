"""``fit_map``'s settings: the route its ``optimizer`` argument picks (deterministic
L-BFGS or stochastic Adam), the automatic batch size, the step defaults, every argument
checked before anything is compiled (:func:`check_settings`)."""

from __future__ import annotations

import optax

from .errors import InvalidInput, InvalidType
from .inference.optim import lbfgs, whitened_adam
from .inference.restarts import Settings
from .validation import check_count, check_real

__all__ = ["AUTO_FULL_BATCH", "AUTO_BATCH_SIZE", "AUTO_LBFGS_MAX", "LBFGS_STEPS",
           "LBFGS_SCREEN", "check_settings", "optimizer_route"]


AUTO_FULL_BATCH = 16384  # Adam: every trial every step up to here, minibatches above
AUTO_BATCH_SIZE = 8192
AUTO_LBFGS_MAX = 65536  # the default route stays deterministic (L-BFGS, full batch) up to here
LBFGS_STEPS = 150  # the most L-BFGS steps of the kept start (it usually converges first)
LBFGS_SCREEN = 20  # L-BFGS steps of every start before the best one continues


def optimizer_route(optimizer, batch_size):
    """``(optax transformation, deterministic)`` of the ``optimizer`` argument."""
    if optimizer is None:
        optimizer = "adam" if batch_size is not None else "lbfgs"
    if isinstance(optimizer, str):
        if optimizer == "lbfgs":
            if batch_size is not None:
                raise InvalidInput('optimizer="lbfgs" needs every trial every step (its line '
                                   'search needs a deterministic loss): use batch_size=None, '
                                   'or optimizer="adam" for minibatches')
            return lbfgs(), True
        if optimizer == "adam":
            return whitened_adam(), False
        raise InvalidInput(f'optimizer must be "lbfgs", "adam", None or an optax '
                           f'GradientTransformation, got {optimizer!r}')
    if not isinstance(optimizer, optax.GradientTransformation):
        raise InvalidType(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    return optimizer, False


def check_settings(data, model, steps, optimizer, learning_rate, num_restarts, batch_size,
                   eval_samples, init_scale, screen_steps, tol=0.05) -> Settings:
    """Every fit_map argument checked, before anything is compiled."""
    num_restarts = check_count("num_restarts", num_restarts)
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise InvalidInput(f'batch_size must be an int, None or "auto", got {batch_size!r}')
        limit = AUTO_LBFGS_MAX if optimizer in (None, "lbfgs") else AUTO_FULL_BATCH
        batch_size = AUTO_BATCH_SIZE if len(data) > limit else None
    if batch_size is not None:
        batch_size = check_count("batch_size", batch_size)
        if batch_size >= len(data):
            batch_size = None
    learning_rate = check_real("learning_rate", learning_rate, 0.0)
    custom = optimizer is not None and not isinstance(optimizer, str)
    transformation, deterministic = optimizer_route(optimizer, batch_size)
    if steps is None:
        steps = LBFGS_STEPS if deterministic else 2000
    steps = check_count("steps", steps)
    if eval_samples is None:
        eval_samples = max(8 * model.num_samples, 1024)
    eval_samples = check_count("eval_samples", eval_samples)
    if check_real("init_scale", init_scale) <= 0:
        raise InvalidInput(f"init_scale must be > 0, got {init_scale!r}")
    if screen_steps is None:
        screen_steps = steps if num_restarts == 1 else (
            LBFGS_SCREEN if deterministic else max(1, steps // 4))
    screen_steps = min(check_count("screen_steps", screen_steps), steps)
    if tol is not None:
        tol = check_real("tol", tol, 0.0, lo_closed=True)
    return Settings(steps, num_restarts, screen_steps, learning_rate, batch_size, eval_samples,
                     float(init_scale), custom, transformation, deterministic,
                     tol if deterministic else None)
