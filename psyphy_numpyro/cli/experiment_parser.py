"""``psyphy-numpyro experiment``: its argument parser (the actions and their options).

One concept: the command line of the ``experiment`` subcommand, whose usage errors,
like everything it prints, answer with one JSON object on stdout (:func:`emit`).
The actions themselves run in :mod:`psyphy_numpyro.cli.experiment`.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._common import (
    MODEL_OPTIONS,
    LazyParser,
    estimator_names,
    parse_lapse_rate,
    wrap,
)

__all__ = ["add_parser", "emit", "REFIT_MODES"]

REFIT_MODES = ("background", "wait", "off")

_EPILOG = """\
actions:
  new     create a session file (or reopen it with --exist-ok)
  ask     the next trials: ids and stimuli (n, 2, d)
  tell    record responses (1 correct, 0 wrong) of asked trials
  status  counts, fits, the refit state, progress and the stop rules
  refit   refit now (waits for a running refit), or in the background
  expire  discard pending trials

examples:
  psyphy-numpyro experiment new obs1.sqlite --dim 2 --seed 1
  psyphy-numpyro experiment new obs2.sqlite --space xy.toml   # stimuli in CIE xy
  psyphy-numpyro experiment new obs3.sqlite --prior population.nc   # warm start
  psyphy-numpyro experiment new obs4.sqlite --region=-0.5,0:0,0.5   # references in a box
  psyphy-numpyro experiment new obs5.sqlite --validation-fraction 0.2   # held-out MOCS
  psyphy-numpyro experiment new obs5.sqlite --max-trials 3000 --target-precision 10
  psyphy-numpyro experiment ask obs1.sqlite --n 20
  psyphy-numpyro experiment tell obs1.sqlite --ids 1,2,3 --responses 1,0,1
  echo '{"ids": [4, 5], "responses": [1, 1]}' | psyphy-numpyro experiment tell obs1.sqlite
  psyphy-numpyro experiment status obs1.sqlite

Every call prints one JSON object on one line of stdout ("ok": true/false);
exit status 0 ok, 2 bad input (nothing changed), 3 the session is owned by
another live process (--takeover takes it over), 1 a failed refit or a bug.
See docs/experiment.md.
"""


def emit(obj) -> None:
    """Print one JSON object as the last line of stdout (stderr flushed first)."""
    sys.stderr.flush()
    sys.stdout.write(json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


def _usage_error(parser, message):
    """argparse's usage error (stderr, exit 2), with the JSON error object on stdout."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    emit({"ok": False, "error": f"{parser.prog}: {message}", "status": 2})
    sys.exit(2)


class _JSONParser(LazyParser):
    """An action's parser: usage errors and unrecognised arguments also answer in JSON."""

    def error(self, message):
        _usage_error(self, message)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return namespace, extra


def add_parser(sub, raw) -> None:
    """Add ``experiment`` and its actions to the top-level subcommands ``sub``."""
    p = sub.add_parser(
        "experiment",
        help="run an adaptive session from other software (JSON in and out)",
        description=wrap("Drive an adaptive session file (psyphy_numpyro.Experiment) from "
                         "experiment software in any language: one JSON object per call on "
                         "stdout."),
        epilog=_EPILOG,
        formatter_class=raw,
    )
    p.error = lambda message: _usage_error(p, message)
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                            parser_class=_JSONParser)
    session_help = "the session file (SQLite), e.g. observer1.sqlite"

    new = acts.add_parser("new", help="create a session file",
                          description=wrap("Create a session file. Without model options "
                                           "the first refit chooses the WPPM's "
                                           "hyperparameters from the data; any model option "
                                           "fixes the model (WPPM defaults for the rest)."),
                          formatter_class=raw, populate=_add_new_options)
    new.add_argument("session", help=session_help)
    new.add_argument("--dim", "--input-dim", dest="dim", type=int, default=None,
                     help="stimulus dimension, 1 to 3 (default: 2)")
    new.add_argument("--seed", type=int, default=None, help="seeds the design, fits and "
                     "proposals (default: 0)")
    new.add_argument("--num-initial", type=int, default=None,
                     help="space-filling trials before the first refit (default: 150 * dim)")
    new.add_argument("--refit-every", type=int, default=None,
                     help="responses between refits (default: 200)")
    new.add_argument("--distances", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     default=None, help="distance range of the space-filling trials "
                     "(default: 0.005 0.4)")
    new.add_argument("--space", metavar="FILE", default=None,
                     help="the lab's stimulus units: a JSON or TOML description of a "
                     "psyphy_numpyro.StimulusSpace (box, colour or affine); ask, status and "
                     "the refits' read-outs then speak them (default: the model's box "
                     "[-1, 1]^d)")
    new.add_argument("--prior", metavar="FILE", default=None,
                     help="warm-start a new observer from a population: a population fit "
                     "(PopulationFit.save, NetCDF) or a weight prior (WeightPrior.save, "
                     "JSON); the model is the population's (a weight prior's: the WPPM its "
                     "shape implies), model options change its settings; the first refit "
                     "comes after 20 * dim trials (docs/population.md)")
    new.add_argument("--region", metavar="BOX|FILE", default=None,
                     help="where the user looks (default: the whole domain), in the "
                     "session's units (--space's, else the model's box): a box "
                     "LO1,LO2:HI1,HI2 (write --region=-0.5,0:0,0.5 when it starts with "
                     "'-'), or a file of reference points, one per row (.npy, or text "
                     "with commas or spaces); every reference then lies in the box (is "
                     "one of the points) and criterion global integrates over it")
    new.add_argument("--validation-fraction", type=float, metavar="F", default=None,
                     help="interleave held-out MOCS validation trials: this share (0 < F "
                     "< 1) of the trials ask hands out, labelled 'validation', never "
                     "fitted (default: none; docs/experiment.md, 'Validation trials')")
    new.add_argument("--validation-references", type=int, metavar="R", default=None,
                     help="validation conditions: references spread over the region, one "
                     "random direction each (default: 8)")
    new.add_argument("--validation-levels", metavar="L|D1,D2,...", default=None,
                     help="validation distances (model units): a count L (geometric over "
                     "--distances) or a list D1,D2,... (default: 6)")
    new.add_argument("--validation-repeats", type=int, metavar="K", default=None,
                     help="validation trials per condition and level (default: 10)")
    stop = new.add_argument_group("stop rules (any met: status reports progress.stop; "
                                  "ask still hands out trials)")
    stop.add_argument("--max-trials", type=int, default=None, metavar="N",
                      help="stop after N trials told")
    stop.add_argument("--max-seconds", type=float, default=None, metavar="S",
                      help="stop S seconds (wall clock) after the session's first ask")
    stop.add_argument("--target-precision", type=float, default=None, metavar="PCT",
                      help="stop when the median width of the latest fit's 90%% threshold "
                      "intervals over the region is at most PCT %% of the threshold")
    new.add_argument("--exist-ok", action="store_true",
                     help="reopen the session if it exists (its settings must match)")
    _add_actions(acts, raw, session_help)
    p.set_defaults(command="experiment")


def _add_new_options(new) -> None:
    """The refit and model options of ``experiment new`` (added on first use: their
    choices come from the library, which imports JAX)."""
    f = new.add_argument_group("refits (defaults: the session's)")
    f.add_argument("--map-steps", type=int, help="MAP steps of the first fit (default: 2000)")
    f.add_argument("--warm-steps", type=int,
                   help="MAP steps of later, warm-started fits (default: 500)")
    f.add_argument("--num-draws", type=int, help="Laplace draws per fit (default: 64)")
    from ..design.acquisition import CRITERIA

    f.add_argument("--criterion", choices=CRITERIA,
                   help="how proposals are scored (default: info_gain)")
    m = new.add_argument_group("model (any of these fixes the model; defaults: the WPPM's)")
    for name, typ, text in MODEL_OPTIONS:
        if name == "estimator":
            kwargs = {"choices": estimator_names()}
        else:
            kwargs = {"type": parse_lapse_rate if typ == "lapse" else typ}
        m.add_argument("--" + name.replace("_", "-"), default=None, help=text, **kwargs)


def _add_actions(acts, raw, session_help) -> None:
    """The actions after ``new``."""

    def refit_option(q, default="background"):
        q.add_argument("--refit", choices=REFIT_MODES, default=default,
                       help="when a refit is due: start it in a background process "
                       "(default), run it in this process and wait, or do nothing")
        q.add_argument("--wait", dest="refit", action="store_const", const="wait",
                       help="same as --refit wait")

    def takeover_option(q):
        q.add_argument("--takeover", action="store_true",
                       help="take the session over from a live owner (a server, a script "
                       "holding it open): its pending trials move to this call")

    ask = acts.add_parser("ask", help="the next trials (ids and stimuli)",
                          description=wrap("Hand out the next trials: trials left pending by "
                                           "earlier calls first (same ids), then the latest "
                                           "fit's proposals, then the space-filling "
                                           "sequence. Stored as pending before it prints."),
                          formatter_class=raw)
    ask.add_argument("session", help=session_help)
    ask.add_argument("--n", "-n", type=int, default=1, help="number of trials (default: 1)")
    ask.add_argument("--no-reissue", action="store_true",
                     help="hand out only new trials (pending ones stay tellable)")
    refit_option(ask)
    takeover_option(ask)

    tell = acts.add_parser("tell", help="record responses",
                           description=wrap("Record responses (1 correct, 0 wrong; true/false "
                                            "in JSON) of asked trials, from --json, from "
                                            "--ids/--responses or from a JSON object "
                                            "{\"ids\": [...], \"responses\": [...]} on stdin. "
                                            "Durable on disk before it prints; a bad id or "
                                            "response records nothing."),
                           formatter_class=raw)
    tell.add_argument("session", help=session_help)
    tell.add_argument("--json", help='{"ids": [...], "responses": [...]}')
    tell.add_argument("--ids", help="comma-separated trial ids, e.g. 4,5,6")
    tell.add_argument("--responses", help="comma-separated 0/1 responses, e.g. 1,0,1")
    tell.add_argument("--repeat-ok", action="store_true",
                      help="accept ids already told with the same response (a retried call) "
                      "without recording them twice; a different response is still an error")
    refit_option(tell)
    takeover_option(tell)

    status = acts.add_parser("status", help="counts, fits, the refit state and progress",
                             formatter_class=raw)
    status.add_argument("session", help=session_help)

    refit = acts.add_parser("refit", help="refit now",
                            description=wrap("Refit the session now (waiting for a running "
                                             "refit first) if it has responses its latest fit "
                                             "has not seen."),
                            formatter_class=raw)
    refit.add_argument("session", help=session_help)
    refit.add_argument("--if-due", action="store_true",
                       help="only when a refit is due by the session's policy")
    refit.add_argument("--background", action="store_true",
                       help="start it in a detached process and return at once")
    takeover_option(refit)
    refit.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    refit.add_argument("--delegated", action="store_true", help=argparse.SUPPRESS)

    expire = acts.add_parser("expire", help="discard pending trials",
                             description=wrap("Mark pending trials expired: never handed out "
                                              "again and not tellable."),
                             formatter_class=raw)
    expire.add_argument("session", help=session_help)
    expire.add_argument("--ids", help="comma-separated ids (default: every pending trial)")
    takeover_option(expire)
