"""Write every command's --help text to docs/cli/<command>.txt, as its parser prints it at 100
columns (common.stored_help prints these for a bare --help before torch loads; the test of
--help fails when one is stale). Run it after changing a flag, a default or a help text.

python3 -m tools.help_texts            # rewrite the stale texts
python3 -m tools.help_texts --check    # list the stale texts, exit 2 if any
python3 -m tools.help_texts --time     # time every bare --help (target: under 1 s), each in a
                                       # fresh process; appends to bench/results/help.jsonl
"""

import importlib
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_text
from common.stored_help import HELP_DIR

WIDTH = 100
SCRIPTS = ("main", "word_freq", "predict", "predict_downstream_condition", "compute_elbo",
           "compute_metric")  # fmt: skip
# command (python3 -m NAME) → the module whose build_parser() is its parser
MODULES = {
    "conditional_data": "conditional_data.__main__",
    "evaluation.plots": "evaluation.plots",
    "evaluation.compare": "evaluation.compare",
    "evaluation.compare_outputs": "evaluation.compare_outputs",
    "evaluation.recipes": "evaluation.recipes",
    "evaluation.card": "evaluation.card",
    "experiments.recipe_coverage": "experiments.recipe_coverage",
    "experiments.variance": "experiments.variance",
    "experiments.ablation": "experiments.ablation.settings",
    "experiments.ablation.table": "experiments.ablation.table",
    "experiments.ablation.plots": "experiments.ablation.plots",
    "experiments.ar_twin": "experiments.ar_twin.settings",
    "experiments.ar_twin.summary": "experiments.ar_twin.summary",
    "experiments.seq2seq_wiki": "experiments.seq2seq_wiki.run",
    "experiments.seq2seq_wiki.summary": "experiments.seq2seq_wiki.summary",
    "training.presets": "training.presets",
    "bench.bench": "bench.bench",
    "bench.sample": "bench.sample",
    "bench.data": "bench.data",
    "bench.padding": "bench.padding",
    "bench.autoregressive": "bench.autoregressive",
    "tools.gpu_check": "tools.gpu_check",
    "tools.same_numbers": "tools.same_numbers",
    "tools.help_texts": "tools.help_texts",
    "tools.dashboard_shots": "tools.dashboard_shots",
}
COMMANDS = {**{name: name for name in SCRIPTS}, **MODULES}


@contextmanager
def columns(width: int):
    """argparse's line width (it reads $COLUMNS) set to ``width`` inside the block."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def help_text(command: str) -> str:
    """``command``'s --help as its parser prints it at ``WIDTH`` columns (a script's usage
    line names the script file, as when it runs)."""
    parser = importlib.import_module(COMMANDS[command]).build_parser()
    if command in SCRIPTS:
        parser.prog = f"{command}.py"
    with columns(WIDTH):
        return parser.format_help()


def stale() -> list[str]:
    """The commands whose stored text is missing or differs from their parser's."""
    found = []
    for command in COMMANDS:
        path = HELP_DIR / f"{command}.txt"
        if not path.is_file() or path.read_text(encoding="utf-8") != help_text(command):
            found.append(command)
    return found


def timed(command: str, repeats: int) -> dict:
    """Median seconds of ``repeats`` fresh runs of ``command --help``, and whether each printed
    exactly the stored text."""
    argv = [f"{command}.py"] if command in SCRIPTS else ["-m", command]
    stored = (HELP_DIR / f"{command}.txt").read_text(encoding="utf-8")
    seconds, same = [], True
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *argv, "--help"], cwd=HELP_DIR.parents[1],
                              capture_output=True, text=True, check=False)  # fmt: skip
        seconds.append(time.perf_counter() - start)
        same &= done.returncode == 0 and done.stdout == stored
    return {"seconds": round(statistics.median(seconds), 3), "stored_text": same}


def time_all(repeats: int) -> None:
    """Print and record (bench/results/help.jsonl) every command's --help time."""
    from bench.harness import RESULTS, append_results

    times = {command: timed(command, repeats) for command in COMMANDS}
    for command, t in times.items():
        print(f"{command:36} {t['seconds']:.3f} s{'' if t['stored_text'] else '  NOT STORED'}")
    slowest = max(times, key=lambda c: times[c]["seconds"])
    row = {"repeats": repeats, "slowest": slowest, "commands": times}
    append_results(RESULTS / "help.jsonl", [row], ["tools.help_texts", *sys.argv[1:]])
    print(f"slowest: {slowest}, {times[slowest]['seconds']:.3f} s; appended to "
          f"{RESULTS / 'help.jsonl'}")  # fmt: skip


def build_parser() -> Parser:
    p = Parser(prog="python3 -m tools.help_texts", description=__doc__.splitlines()[0])
    p.boolean("--check", help="only list the stale texts (exit 2 if any)")
    p.boolean("--time", help="time every command's bare --help instead")
    p.flag("--repeats", type=int, default=3, help="--time: runs per command (median kept)")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.time:
        time_all(args.repeats)
        return
    found = stale()
    if args.check:
        if found:
            raise UsageError(f"stale --help texts: {', '.join(found)}; run python3 -m "
                             "tools.help_texts")  # fmt: skip
        print(f"{len(COMMANDS)} --help texts are current")
        return
    for command in found:
        write_text(HELP_DIR / f"{command}.txt", help_text(command))
        print(f"wrote {HELP_DIR / command}.txt")
    print(f"{len(found)} of {len(COMMANDS)} --help texts rewritten")


if __name__ == "__main__":
    main()
