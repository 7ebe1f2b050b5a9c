"""The machine line every benchmark table starts with."""

import platform

import jax

import psyphy_numpyro as pn


def machine_line() -> str:
    """``# <cpu>, <n> <backend> device(s), jax <v>, psyphy_numpyro <v>``."""
    return (f"# {platform.processor() or platform.machine()}, {jax.device_count()} "
            f"{jax.default_backend()} device(s), jax {jax.__version__}, "
            f"psyphy_numpyro {pn.__version__}")
