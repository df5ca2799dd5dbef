"""The Evaluate pane's form and launch: the settings row, running an evaluation in a worker
(progress bar, running JSONExact), picking an adapter, and scoring a predictions file made
elsewhere."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.widgets import Checkbox, Input, Label, ProgressBar, Select
from textual.worker import get_current_worker

from tui.adapters import AUTO, AdapterChoice, AdapterPicker
from tui.model_cache import MODELS
from tui.results import error_message, fmt_ratio
from tui.scoring import ScoreRequest, ScoreScreen
from tui.widgets import stop_progress


@dataclass(frozen=True)
class EvalRequest:
    """The form's values, read on the UI thread and handed to the worker."""

    model: str
    adapter: str
    data: str
    preset: str
    constrained: bool
    limit: int | None
    batch_size: int
    max_new_tokens: int | None = None  # overrides the preset's limit when set
    template: str = AUTO  # a prompt template, or AUTO: the adapter's training template
    protocol: str = "schemalab"  # or edgejson: the published harness's prompt, decoding, parse


class EvalForm:
    """Mixin for EvaluatePane: the form, the evaluation and scoring workers."""

    @work(thread=True, exclusive=True, group="ev-datasets", exit_on_error=False)
    def load_datasets(self) -> None:
        """Fill the data set choice from the data set folders (read in a worker)."""
        from engine.data.load import discover_datasets

        try:
            found = discover_datasets(self.dataset_paths)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.app.call_from_thread(self.notify, error_message(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._set_datasets, found)

    def _set_datasets(self, found: list) -> None:
        self._data_options = [
            (f"{info.name} ({info.n_examples})", str(info.path)) for info in found
        ]
        preferred = [info for info in found if info.split == "test"] or found
        self._show_data_options(str(preferred[0].path) if preferred else None)

    def _show_data_options(self, default: str | None) -> None:
        """The data set choice: the data sets found, plus a prefilled file that is not among
        them; the prefilled one is chosen, else `default` when nothing is."""
        select = self.query_one("#ev-data", Select)
        options = list(self._data_options)
        wanted = self._prefill_data
        if wanted and all(value != wanted for _, value in options):
            options.append((Path(wanted).name, wanted))
        select.set_options(options)
        if wanted:
            select.value = wanted
        elif default and select.value is Select.NULL:
            select.value = default

    def prefill(self, adapter: str, data: str | None = None) -> None:
        """Fill the adapter field and, when given, choose the data set `data` (a file path)."""
        self.query_one("#ev-adapter", Input).value = str(adapter)
        if data:
            self._prefill_data = str(data)
            self._show_data_options(None)

    def form_request(self) -> EvalRequest | None:
        data = self.query_one("#ev-data", Select).value
        if data is Select.NULL or not data:
            self.notify("Choose a data set to evaluate on.", severity="warning")
            return None
        limit = self.query_one("#ev-limit", Input).value.strip()
        batch = self.query_one("#ev-batch", Input).value.strip()
        max_tokens = self.query_one("#ev-max-tokens", Input).value.strip()
        return EvalRequest(
            model=self.query_one("#ev-model", Input).value.strip() or "tiny",
            adapter=self.query_one("#ev-adapter", Input).value.strip(),
            data=str(data),
            preset=str(self.query_one("#ev-preset", Select).value),
            constrained=self.query_one("#ev-constrained", Checkbox).value,
            limit=int(limit) if limit.lstrip("-").isdigit() and int(limit) > 0 else None,
            batch_size=max(1, int(batch)) if batch.isdigit() else 8,
            max_new_tokens=int(max_tokens) if max_tokens.isdigit() and int(max_tokens) else None,
            template=str(self.query_one("#ev-template", Select).value),
            protocol=str(self.query_one("#ev-protocol", Select).value),
        )

    def action_run(self) -> None:
        """Evaluate the chosen model on the chosen data set."""
        request = self.form_request()
        if request is None:
            return
        self._cancel.set()
        self._cancel = threading.Event()
        self._start_running(f"loading {request.model}…")
        self.run_evaluation(request, self._cancel)

    def action_cancel(self) -> None:
        """Stop the running evaluation (what it scored so far is kept)."""
        self._cancel.set()
        self.workers.cancel_group(self, "ev-run")

    @work(thread=True, exclusive=True, group="ev-run", exit_on_error=False)
    def run_evaluation(self, request: EvalRequest, cancel: threading.Event) -> None:
        """Worker: run engine.evaluate.run.run_evaluation, posting progress as it scores."""
        worker = get_current_worker()

        def progress(done: int, total: int, running_exact: float | None = None) -> None:
            if worker.is_cancelled:
                cancel.set()
            self.post_message(self.Progress(done, total, running_exact))

        try:
            from engine import runlog
            from engine.decode.generate import decoding_from
            from engine.evaluate.run import choose_template, run_evaluation

            db = runlog.connect(self.db_path)
            limit = request.max_new_tokens
            overrides = [f"max_new_tokens={limit}"] if limit else []
            adapter = request.adapter or None
            chosen = None if request.template == AUTO else request.template
            # The generator encodes prompts, so it is built with the template the run will use.
            template, warning = choose_template(db, adapter, chosen, request.protocol)
            if warning:
                self.post_message(self.Warned(warning))
            run_id = run_evaluation(
                db,
                request.model,
                request.data,
                adapter=adapter,
                decoding=decoding_from(request.preset, overrides),
                constrained=request.constrained,
                limit=request.limit,
                batch_size=request.batch_size,
                progress=progress,
                cancel=cancel,
                generator=self._generator(request, db, template),
                protocol=request.protocol,
                prompt_template=chosen,
            )
        except TypeError as exc:
            self.post_message(self.Failed(keyword_message(exc, "run_evaluation")))
            return
        except Exception as exc:  # noqa: BLE001 - the engine's message becomes a notification
            self.post_message(self.Failed(error_message(exc)))
            return
        self.post_message(self.Finished(run_id, cancel.is_set() or worker.is_cancelled))

    def _generator(self, request: EvalRequest, db, template: str):
        """The Generator for (model, adapter) with `template`, over weights loaded in the worker
        once and shared with the Playground (tui.model_cache)."""
        return MODELS.generator(request.model, request.adapter or None, db=db, template=template)

    def on_evaluate_pane_progress(self, message) -> None:
        self.query_one("#ev-progress", ProgressBar).update(
            total=message.total, progress=message.done
        )
        running = fmt_ratio(message.running_exact)
        self._progress_text = f"{message.done}/{message.total} scored  JSONExact {running}"
        self.query_one("#ev-running", Label).update(self._progress_text)

    def _start_running(self, status: str) -> None:
        bar = self.query_one("#ev-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.add_class("running")
        self._progress_text = "nothing scored"
        self.query_one("#ev-running", Label).update(status)

    def _stop_running(self) -> None:
        """Hide the progress bar and stop its animation (a hidden one would still redraw)."""
        self.remove_class("running")
        stop_progress(self.query_one("#ev-progress", ProgressBar))

    def on_evaluate_pane_finished(self, message) -> None:
        self._stop_running()
        label = self.query_one("#ev-running", Label)
        state = "cancelled" if message.cancelled else "finished"
        label.update(f"evaluation {message.run_id} {state}: {self._progress_text}")
        self.refresh_history()
        if message.run_id is not None:
            self.show_run(message.run_id)

    def on_evaluate_pane_failed(self, message) -> None:
        self._stop_running()
        self.query_one("#ev-running", Label).update(Text(message.title.lower(), style="red"))
        self.notify(message.message, title=message.title, severity="error")

    def on_evaluate_pane_warned(self, message) -> None:
        self.notify(message.message, severity="warning", timeout=10)

    # --- adapters and scoring outputs made elsewhere ----------------------------------------

    def action_pick_adapter(self) -> None:
        """Pick the adapter from the run log's training runs (RUN_ID is the best checkpoint)."""

        def picked(choice: AdapterChoice | None) -> None:
            if choice is None:
                return
            self.query_one("#ev-adapter", Input).value = choice.spec
            template = str(self.query_one("#ev-template", Select).value)
            used = choice.template if template == AUTO else template
            self.notify(
                f"Adapter {choice.spec}, template {used}"
                + (" (its training template)" if template == AUTO else "")
            )

        self.app.push_screen(AdapterPicker(self.db_path, "Adapter to evaluate"), picked)

    def action_score(self) -> None:
        """Score a predictions file made elsewhere against a data set, as an evaluation."""
        data = self.query_one("#ev-data", Select).value
        default = "" if data is Select.NULL or not data else str(data)

        def chosen(request: ScoreRequest | None) -> None:
            if request is None:
                return
            self._start_running(f"scoring {Path(request.predictions).name} ({request.protocol})…")
            self.score_predictions(request)

        self.app.push_screen(ScoreScreen(default), chosen)

    @work(thread=True, exclusive=True, group="ev-score", exit_on_error=False)
    def score_predictions(self, request: ScoreRequest) -> None:
        """Worker: engine.evaluate.run.run_scoring records the outputs as an evaluation run."""

        def progress(done: int, total: int, running_exact: float | None = None) -> None:
            self.post_message(self.Progress(done, total, running_exact))

        try:
            from engine import runlog
            from engine.evaluate.run import run_scoring

            db = runlog.connect(self.db_path)
            try:
                run_id = run_scoring(
                    db,
                    request.data,
                    request.predictions,
                    protocol=request.protocol,
                    progress=progress,
                )
            finally:
                runlog.close(db)
        except ImportError:
            self.post_message(
                self.Failed(
                    "this engine has no engine.evaluate.run.run_scoring yet", "Scoring failed"
                )
            )
            return
        except TypeError as exc:
            self.post_message(self.Failed(keyword_message(exc, "run_scoring"), "Scoring failed"))
            return
        except Exception as exc:  # noqa: BLE001 - the engine's message becomes a notification
            self.post_message(self.Failed(error_message(exc), "Scoring failed"))
            return
        self.post_message(self.Scored(run_id, request.predictions))

    def on_evaluate_pane_scored(self, message) -> None:
        self._stop_running()
        self.query_one("#ev-running", Label).update(
            f"scored {Path(message.predictions).name} as evaluation {message.run_id}: "
            f"{self._progress_text}"
        )
        self.refresh_history()
        self.show_run(message.run_id)


def keyword_message(exc: TypeError, function: str) -> str:
    """A TypeError from an engine call that does not take a keyword yet, said plainly."""
    text = str(exc)
    if "unexpected keyword" in text:
        return (
            f"engine.evaluate.run.{function} in this install does not accept a setting the "
            f"workbench sent ({text}); update the engine"
        )
    return error_message(exc)
