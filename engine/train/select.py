"""Choosing the best checkpoint, early stopping and checkpoint retention: small pure functions
over metric values and step numbers, so they are tested without training.

`select_by` names what "better" means: `json_exact` and `field_f1` (higher is better, read from
the step metrics `val_json_exact` / `val_field_f1`) or `val_loss` (lower is better). JSONExact
over a few dozen answers moves in coarse steps and sits at 0 early in a run, so an equal value
is broken by the lower val_loss; a full tie keeps the earlier step, so a later checkpoint must
really improve to take over.
"""

from __future__ import annotations

from dataclasses import dataclass

METRIC_FOR = {"json_exact": "val_json_exact", "field_f1": "val_field_f1", "val_loss": "val_loss"}
LOWER_IS_BETTER = {"val_loss"}


def selection_metric(select_by: str, decoding_on: bool = True) -> str:
    """The step metric that ranks checkpoints. Without in-training decoding (val_eval_limit 0)
    there is no val_json_exact or val_field_f1, so val_loss ranks them instead."""
    metric = METRIC_FOR[select_by]
    return metric if decoding_on or metric in LOWER_IS_BETTER else "val_loss"


def is_better(
    value: float | None,
    best: float | None,
    metric: str,
    loss: float | None = None,
    best_loss: float | None = None,
) -> bool:
    """Whether `value` strictly improves on `best` (None: no value yet / no value now); an
    equal value improves when its val_loss (`loss`) is strictly lower than `best_loss`."""
    if value is None:
        return False
    if best is None:
        return True
    if value != best:
        return value < best if metric in LOWER_IS_BETTER else value > best
    if metric == "val_loss" or loss is None or best_loss is None:
        return False
    return loss < best_loss


@dataclass
class BestTracker:
    """The best evaluation so far and how many evaluations have passed without improving."""

    metric: str
    best_step: int | None = None
    best_value: float | None = None
    best_loss: float | None = None  # val_loss at the best step (the tie-break)
    since_best: int = 0  # evaluations after the best one that did not improve on it

    def update(self, step: int, value: float | None, loss: float | None = None) -> bool:
        """Feed one evaluation's value (and val_loss); True when it is the new best. A missing
        value (an evaluation that did not run) neither improves nor counts against patience."""
        if value is None:
            return False
        if is_better(value, self.best_value, self.metric, loss, self.best_loss):
            self.best_step, self.best_value, self.best_loss = step, value, loss
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    def should_stop(self, patience: int | None) -> bool:
        return patience is not None and self.best_step is not None and self.since_best >= patience

    def stop_reason(self, patience: int) -> str:
        return (
            f"{self.metric} did not improve for {patience} evaluation(s) after its best "
            f"{self.best_value:.4g} at step {self.best_step}"
        )


def replay(metric: str, evaluations: list[dict]) -> BestTracker:
    """A tracker fed evaluations ({"step", "metrics": {name: value}}) in step order: how a
    resumed run picks up its state, and how the best of checkpoint rows is found."""
    tracker = BestTracker(metric)
    for row in sorted(evaluations, key=lambda r: r["step"]):
        values = row.get("metrics") or {}
        tracker.update(row["step"], values.get(metric), values.get("val_loss"))
    return tracker


def best_step(rows: list[dict], metric: str) -> int | None:
    """The best of checkpoint rows ({"step", "metrics": {...}}) by `metric`."""
    return replay(metric, rows).best_step


def evaluations(metric_rows: list[dict]) -> list[dict]:
    """Run-log metric rows ({"step", "name", "value"}) grouped into one dict per step."""
    by_step: dict[int, dict] = {}
    for row in metric_rows:
        by_step.setdefault(row["step"], {})[row["name"]] = row["value"]
    return [{"step": step, "metrics": values} for step, values in sorted(by_step.items())]


def to_delete(steps: list[int], best: int | None, keep_last: int) -> list[int]:
    """Checkpoint steps that retention removes: all but the last `keep_last` and the best."""
    ordered = sorted(set(steps))
    keep = set(ordered[-keep_last:]) if keep_last > 0 else set()
    if best is not None:
        keep.add(best)
    return [s for s in ordered if s not in keep]
