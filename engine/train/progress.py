"""A Rich progress bar on stderr for a foreground training run: step, loss, the latest
validation JSONExact and field F1, tokens/s, ETA."""

from __future__ import annotations


class RichProgress:
    """Context manager and `progress(step, total, metrics)` callback for engine.train.loop."""

    def __init__(self, description: str = "training"):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.bar.add_task(description, total=None, stats="starting")
        self.stats: dict[str, float] = {}

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def log(self, message: str) -> None:
        self.bar.console.print(message, highlight=False)

    def __call__(self, step: int, total: int, metrics: dict | None) -> None:
        if metrics:
            self.stats.update({k: v for k, v in metrics.items() if v is not None})
        s = self.stats
        parts = []
        if "train_loss" in s:
            parts.append(f"loss {s['train_loss']:.4f}")
        if "val_loss" in s:
            parts.append(f"val {s['val_loss']:.4f}")
        if "val_json_exact" in s:
            parts.append(f"exact {s['val_json_exact']:.0%}")
        if "val_field_f1" in s:
            parts.append(f"F1 {s['val_field_f1']:.2f}")
        if "tokens_per_s" in s:
            parts.append(f"{s['tokens_per_s']:.0f} target tok/s")
        if "eta_s" in s:
            parts.append(f"ETA {_duration(s['eta_s'])}")
        self.bar.update(self.task, completed=step, total=total, stats="  ".join(parts))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
