"""Loaded models shared by the panes of one workbench: the Playground and Evaluate decode with
the same weights instead of each loading its own copy.

Weights are cached per (model spec, adapter folder); an adapter given as a training run id
(`3`, `3:step-40`) is resolved in the run log first, so the same spec in two run logs is never
taken for the same adapter. Each caller gets its own light Generator over the cached weights
(its own prompt template and figures). Loading happens in the caller's thread: call from a
worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_MODELS = 2  # the Playground compares two models side by side


class ModelCache:
    """At most `max_models` loaded (model, adapter) pairs, the least recently used dropped."""

    def __init__(self, max_models: int = MAX_MODELS) -> None:
        self.max_models = max_models
        self._lock = threading.Lock()
        self._bases: OrderedDict[tuple[str, str | None], Any] = OrderedDict()

    def base(
        self,
        model: str,
        adapter: str | None = None,
        *,
        db: Any = None,
        on_load: Callable[[], None] | None = None,
    ):
        """The cached Generator holding the weights of `model` plus `adapter` (loaded now, with
        `on_load()` called first, when not cached). `db` resolves run-id adapter specs."""
        from engine.decode.generate import Generator, resolve_adapter

        folder, run_id = resolve_adapter(adapter, db) if adapter else (None, None)
        key = (str(model), None if folder is None else str(folder.resolve()))
        with self._lock:  # two panes or columns asking for one model load it once
            base = self._bases.get(key)
            if base is None:
                if on_load is not None:
                    on_load()
                base = Generator(str(model), folder, db=db)
                base.adapter_run_id = run_id
                self._bases[key] = base
                while len(self._bases) > self.max_models:
                    self._bases.popitem(last=False)
            else:
                self._bases.move_to_end(key)
        return base

    def generator(
        self,
        model: str,
        adapter: str | None = None,
        *,
        db: Any = None,
        template: str | None = None,
        on_load: Callable[[], None] | None = None,
    ):
        """A Generator of its own (prompt template, figures) over the cached weights."""
        from engine.decode.generate import Generator
        from engine.decode.prompt import DEFAULT_TEMPLATE

        base = self.base(model, adapter, db=db, on_load=on_load)
        gen = Generator(
            str(model),
            model=base.model,
            tokenizer=base.tokenizer,
            template=template or DEFAULT_TEMPLATE,
        )
        gen.adapter_path, gen.adapter_run_id = base.adapter_path, base.adapter_run_id
        return gen

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()


MODELS = ModelCache()  # the workbench's one cache
