"""Schema metrics during training: decode the first `val_eval_limit` validation examples with the
model being trained (the PeftModel as is, no merge), score every answer as an evaluation run
would, and return the step metrics `val_json_exact`, `val_field_f1`, `val_leaf_f1`,
`val_schema_valid`, `val_parse_rate`, `val_truncated` (shares of the examples decoded) and
`val_eval_s` (seconds the evaluation took).
"""

from __future__ import annotations

import time
from typing import Any

VAL_METRICS = (
    "val_json_exact",
    "val_field_f1",
    "val_leaf_f1",
    "val_schema_valid",
    "val_parse_rate",
    "val_truncated",
)


def score_generations(examples: list, generations: list, registry: Any, formats: str) -> dict:
    """The val_* shares for answers to `examples` (engine.evaluate.metrics.score on each)."""
    from engine.evaluate.metrics import score
    from engine.evaluate.run import schema_of

    n = len(examples)
    if not n:
        return {}
    totals = dict.fromkeys(VAL_METRICS, 0.0)
    n_schema = 0
    for ex, gen in zip(examples, generations):
        schema = schema_of(ex, registry)
        s = score(ex, gen.text, schema, truncated=gen.truncated, formats=formats)
        totals["val_json_exact"] += float(s["json_exact"])
        totals["val_field_f1"] += s["field_f1"]
        totals["val_leaf_f1"] += s["leaf_f1"]
        totals["val_parse_rate"] += float(s["parsed"] is not None)
        totals["val_truncated"] += float(gen.truncated)
        if s["schema_valid"] is not None:
            n_schema += 1
            totals["val_schema_valid"] += float(s["schema_valid"])
    out = {k: v / n for k, v in totals.items()}
    out["val_schema_valid"] = totals["val_schema_valid"] / n_schema if n_schema else None
    return out


class ValEvaluator:
    """Decodes and scores the validation slice; one per run (the formats are found once)."""

    def __init__(self, cfg, setup):
        from engine.evaluate.run import default_formats

        self.cfg, self.s = cfg, setup
        self.examples = list(setup.data.val_examples[: cfg.val_eval_limit])
        self.registry = setup.data.registry
        self.formats = (
            default_formats(self.examples, self.registry)[0] if self.examples else "lenient"
        )
        self.total_s = 0.0  # seconds spent in this evaluation, over the run
        self.count = 0

    @property
    def enabled(self) -> bool:
        return bool(self.examples)

    def __call__(self, stop: Any = None) -> dict | None:
        """The val_* metrics and val_eval_s, or None when off. Raises engine.decode.generate.Cancelled
        when `stop` is set meanwhile (the time spent still counts)."""
        if not self.enabled:
            return None
        from engine.decode.generate import DecodingConfig, Generator
        from engine.evaluate.run import schema_of

        cfg, s = self.cfg, self.s
        t0 = time.perf_counter()
        was_training = s.model.training
        try:
            # Generator puts the model in eval mode (no LoRA dropout; gradient checkpointing
            # is only active in training mode) and passes use_cache=True to every forward.
            gen = Generator(cfg.model, model=s.model, tokenizer=s.tok, template=cfg.prompt_template)
            items = [(e.prompt, e.schema_id, schema_of(e, self.registry)) for e in self.examples]
            outs = gen.generate(
                items,
                DecodingConfig(max_new_tokens=cfg.val_max_new_tokens),
                constrained=cfg.val_constrained,
                batch_size=cfg.val_eval_batch,
                cancel=stop,
                formats=self.formats,
            )
            metrics = score_generations(self.examples, outs, self.registry, self.formats)
        finally:
            if was_training:
                s.model.train()
            elapsed = time.perf_counter() - t0
            self.total_s += elapsed
        self.count += 1
        metrics["val_eval_s"] = elapsed
        metrics["val_eval_examples_per_s"] = len(self.examples) / max(elapsed, 1e-9)
        return metrics
