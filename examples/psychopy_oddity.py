"""An adaptive colour-oddity experiment in PsychoPy, driven by the session server.

Three colour patches: two show the reference, one (at a random position) the
comparison. The observer presses 1, 2 or 3 for the odd one; a correct choice
is response 1. Every trial comes from the session server and every response
goes back to it, so the refits and the choice of the next trials happen in
the server's process (with JAX) while this script needs only PsychoPy and the
standard-library client.

Run it
------
1. In a terminal, with psyphy_numpyro installed::

       psyphy-numpyro serve --port 8765 --root sessions/

2. In PsychoPy Coder, open this file and run it. If psyphy_numpyro is not
   installed in PsychoPy's own Python, copy ``psyphy_numpyro/client.py`` next
   to this script (it needs only the standard library); it is then imported
   as ``client``.
3. Open the session's live page (printed at the start) on a second screen.

Colours
-------
The session's stimuli are points in the model's box ``[-1, 1]^2``. This
example reads them as a small offset in an isoluminant plane around a mid
grey: the point ``(x, y)`` is the DKL colour of elevation 0 (isoluminant),
azimuth ``atan2(y, x)`` and contrast ``MAX_CONTRAST * |(x, y)|``, converted
to the monitor's RGB by PsychoPy's ``dkl2rgb``. That conversion uses
PsychoPy's default monitor matrix: for real data give it your calibrated
monitor's ``conversionMatrix`` (and keep the stimuli within the gamut).

Keys: 1/2/3 answer, Escape ends the session (every response given so far is
already stored; run the script again to resume where it stopped).
"""

import math
import random

from psychopy import core, event, visual
from psychopy.tools.colorspacetools import dkl2rgb

try:  # the package, or client.py copied next to this script
    from psyphy_numpyro.client import Client
except ImportError:  # pragma: no cover - PsychoPy without psyphy_numpyro
    from client import Client

SERVER = "http://127.0.0.1:8765"
TOKEN = None                 # the server's --token, if it has one
SESSION = "observer01.sqlite"  # a file under the server's --root
NUM_TRIALS = 300             # trials in this run (a session can span several runs)
MAX_CONTRAST = 0.3           # DKL contrast of the box's edge (|(x, y)| = 1)
CONVERSION_MATRIX = None     # your monitor's DKL -> RGB matrix (None: PsychoPy's default)
PATCH_SIZE = 4.0             # degrees of visual angle
SPACING = 6.0                # between patch centres, degrees
STIMULUS_TIME = 1.0          # seconds the patches are shown
ITI = 0.5                    # seconds between a response and the next trial


def model_to_rgb(point):
    """A 2-D model point in ``[-1, 1]^2`` as a PsychoPy ``rgb`` colour (-1..1, grey 0)."""
    x, y = float(point[0]), float(point[1])
    azimuth = math.degrees(math.atan2(y, x)) % 360.0
    contrast = MAX_CONTRAST * math.hypot(x, y)
    rgb = dkl2rgb([0.0, azimuth, contrast], conversionMatrix=CONVERSION_MATRIX)
    return [max(-1.0, min(1.0, float(v))) for v in rgb]


def main():
    client = Client(SERVER, token=TOKEN)
    session = client.session(SESSION, input_dim=2, seed=1)
    print("live page:", session.live_url())

    win = visual.Window(size=(1280, 800), fullscr=False, units="deg", monitor="testMonitor",
                        color=[0, 0, 0], colorSpace="rgb")
    positions = [(-SPACING, 0.0), (0.0, 0.0), (SPACING, 0.0)]
    patches = [visual.Rect(win, width=PATCH_SIZE, height=PATCH_SIZE, pos=p, colorSpace="rgb")
               for p in positions]
    labels = [visual.TextStim(win, text=str(k + 1), pos=(p[0], -PATCH_SIZE), height=0.8,
                              color=[0.6, 0.6, 0.6]) for k, p in enumerate(positions)]
    fixation = visual.TextStim(win, text="+", height=1.0, color=[0.6, 0.6, 0.6])
    prompt = visual.TextStim(win, text="Which one is different?  1 / 2 / 3",
                             pos=(0, -PATCH_SIZE - 2), height=0.7, color=[0.6, 0.6, 0.6])
    clock = core.Clock()

    for _ in range(NUM_TRIALS):
        ids, stimuli = session.ask(1)
        reference, comparison = stimuli[0]
        odd = random.randrange(3)
        for k, patch in enumerate(patches):
            patch.fillColor = patch.lineColor = model_to_rgb(comparison if k == odd
                                                             else reference)

        fixation.draw()
        win.flip()
        core.wait(ITI)
        for patch in patches:
            patch.draw()
        win.flip()
        core.wait(STIMULUS_TIME)
        for label in labels:
            label.draw()
        prompt.draw()
        win.flip()

        event.clearEvents()
        clock.reset()
        keys = event.waitKeys(keyList=["1", "2", "3", "escape"], timeStamped=clock)
        key, rt = keys[0]
        if key == "escape":
            break
        correct = int(int(key) - 1 == odd)
        session.tell(ids, [correct])  # stored on the server's disk before it returns
        print(f"trial {ids[0]}: odd {odd + 1}, key {key}, correct {correct}, rt {rt:.2f} s")

    status = session.status()
    print(f"{status['told']} responses in the session, {status['fits']} fits; "
          f"refit: {status['refit']['state']}")
    win.close()
    core.quit()


if __name__ == "__main__":
    main()
