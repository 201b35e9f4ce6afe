"""The training loop (``TrainingLoop.fit``): steps, logging, evaluation, best tracking,
saving and pruning, read top to bottom (nanoGPT's train.py is the model). ``Trainer`` brings
the step, the dev evaluation and the checkpoints it calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets

from common.progress import progress as progress_bar
from common.progress import write as print_line
from training.loggers import Logger
from training.run_dir import prune_checkpoints, record_checkpoint
from training.stopping import (
    SIGNAL_NAMES,
    EvaluationStopped,
    check_finite_weights,
    describe,
    tell_end,
)


@dataclass
class FitResult:
    """How ``fit`` ended: steps taken, the logged ``train_nats_per_token``, the best dev bound,
    and the signal
    that stopped it (None when it ran to the end)."""

    steps: int
    logged: list[float]
    best: float | None
    signal: int | None = None


class TrainingLoop:
    """``fit`` and its parts, for ``training.trainer.Trainer``."""

    started: float | None = None  # when this process's loop began (time.time())

    def elapsed_s(self) -> float:
        """Seconds of training of the whole run: the earlier processes' and this one's."""
        return self.elapsed + (time.time() - self.started if self.started is not None else 0.0)

    def fit(
        self,
        dev_set: datasets.Dataset,
        output_dir: Path,
        loggers: list[Logger] = (),
        stop: Callable[[], int | None] = lambda: None,
    ) -> FitResult:
        """Train to ``max_steps``: log every ``logging_steps``, evaluate every ``eval_steps``
        and at the end (keeping the best in ``best/``), save ``last/`` every ``save_steps``
        and at the end (and ``checkpoint-<step>`` copies with ``keep_last``). ``stop()``
        returns a signal number once a signal asked the run to stop: the step (or the dev
        evaluation, abandoned between two network calls) ends, ``last/`` is saved and the
        result returned. Every logger hears how the run ended (``Logger.end``), whatever
        ended it."""
        for logger in loggers:
            logger.start(self.step, self.max_steps, self.best)
        try:
            result = self._loop(dev_set, Path(output_dir), loggers, stop)
            if result.signal is None:
                check_finite_weights(self.model, Path(output_dir))
        except BaseException as error:
            how = (
                "quit by a second Ctrl-C, not saved"
                if isinstance(error, KeyboardInterrupt)
                else describe(error)
            )
            tell_end(loggers, self.step, "failed", f"failed at step {self.step}: {how}")
            raise
        if result.signal is None:
            tell_end(loggers, self.step, "finished", f"finished: {self.step} steps")
        else:
            name = SIGNAL_NAMES.get(result.signal, f"signal {result.signal}")
            note = f"stopped by {name} at step {self.step}; resumable"
            tell_end(loggers, self.step, "stopped", note)
        return result

    def _loop(
        self,
        dev_set: datasets.Dataset,
        output_dir: Path,
        loggers: list[Logger],
        stop: Callable[[], int | None],
    ) -> FitResult:
        t = self.train
        window, logged = [], []
        self.started = time.time()
        if self.rank == 0 and self.step > 0:
            print_line(f"resumed from step {self.step} of {self.max_steps}")
        progress = progress_bar(
            self.max_steps, "training", "step", enabled=self.rank == 0, initial=self.step
        )
        tick, tokens = time.time(), 0.0
        while self.step < self.max_steps:
            result = self.train_step()
            progress.update(1)
            if result is not None:
                window.append(result)
                tokens += result["tokens"]
            step = self.step
            if step % t.logging_steps == 0 and window and self.rank == 0:
                now = time.time()
                record = _mean_record(window, step, self.skipped_steps, self.elapsed_s())
                record["tokens_per_s"] = round(tokens / max(now - tick, 1e-9), 1)
                tick, tokens = now, 0.0
                for logger in loggers:
                    logger.train(record)
                logged.append(record["train_nats_per_token"])
                if self.first_train is None:
                    self.first_train = record["train_nats_per_token"]
                progress.set_postfix(
                    train_nats_per_token=f"{record['train_nats_per_token']:.4f}",
                    lr=f"{record['lr']:.2e}",
                    tok_s=f"{record['tokens_per_s']:.0f}", refresh=False,
                )  # fmt: skip
                window = []
            if (step % t.eval_steps == 0 or step == self.max_steps) and stop() is None:
                with contextlib.suppress(EvaluationStopped):
                    self._evaluate_and_keep_best(dev_set, output_dir, loggers, stop)
                progress.unpause()  # the bar's rate and ETA count training time only
                tick = time.time()  # so does tokens/s
            signal = stop()
            if step % t.save_every == 0 or step == self.max_steps or signal is not None:
                self.save(output_dir / "last", with_state=True)
                if t.keep_last > 0:
                    if self.rank == 0:  # recorded first: a kill mid-save leaves nothing unowned
                        record_checkpoint(output_dir, step)
                    self.link(output_dir / "last", output_dir / f"checkpoint-{step}")
                    if self.rank == 0:
                        prune_checkpoints(output_dir, t.keep_last)
            if signal is not None:
                progress.close()
                return FitResult(self.step, logged, self.best, signal)
        progress.close()
        return FitResult(self.step, logged, self.best)

    def _evaluate_and_keep_best(
        self,
        dev_set: datasets.Dataset,
        output_dir: Path,
        loggers: list[Logger],
        stop: Callable[[], int | None] = lambda: None,
    ) -> None:
        dev = self.evaluate(dev_set, stop)
        if self.rank == 0:
            for logger in loggers:
                logger.dev(self.step, dev)
            print_line(
                f"step {self.step}: dev {dev['nats_per_token']:.4f} nats/token "
                f"(ppl {dev['ppl_per_token']:.2f}, "
                f"{'exact NLL' if dev['bound'] == 'exact' else dev['bound'] + ' bound'})"
            )
        if self.best is None or dev["nats_per_token"] < self.best:
            self.best = dev["nats_per_token"]
            self.save(output_dir / "best", with_state=False)
            for logger in loggers:
                logger.best(self.step, self.best)


def _mean_record(window: list[dict], step: int, skipped: int, elapsed: float) -> dict:
    """The log record of the steps since the last one: mean losses and gradient norm, the last
    learning rate."""
    return {
        "step": step,
        "train_nats_per_token": sum(r["train_nats_per_token"] for r in window) / len(window),
        "loss": sum(r["loss"] for r in window) / len(window),
        "lr": window[-1]["lr"],
        "grad_norm": sum(r["grad_norm"] for r in window) / len(window),
        "skipped_steps": skipped,
        "elapsed_s": round(elapsed, 2),
    }
