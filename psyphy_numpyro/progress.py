"""Progress bars of long fits (tqdm), with compilation kept out of the ETA."""

from __future__ import annotations

import os

__all__ = ["Progress", "use_progress"]


def use_progress(progress) -> bool:
    """Show a bar? ``None``: yes unless the environment variable ``CI`` is set."""
    if progress is None:
        return not os.environ.get("CI")
    return bool(progress)


class Progress:
    """A tqdm bar whose rate (and so ETA) counts optimisation steps only.

    Compilation is shown as its own phase in the description, and its time is
    taken out of the bar's clock, so the ETA is not inflated by it.
    """

    def __init__(self, show: bool, total: int, desc: str):
        self.desc, self.bar = desc, None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step")

    def phase(self, text: str):
        if self.bar is not None:
            self.bar.set_description(f"{self.desc} [{text}]")

    def compiled(self, seconds: float):
        if self.bar is not None and seconds:
            self.bar.start_t += seconds
            self.bar.last_print_t += seconds

    def update(self, n: int, **postfix):
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(**postfix)

    def close(self):
        if self.bar is not None:
            self.bar.close()
