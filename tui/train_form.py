"""The Train pane's form: every config key it shows, checked as you type (the config's own
rules at once; in workers, whether the model resolves here and has the target modules, the
memory estimate and the too-long count), YAML in and out, and the last config remembered for
the next start. TrainPane mixes it in; its messages are TrainPane's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import work
from textual.widgets import Input, Select, Static
from textual.worker import get_current_worker

from tui.widgets import ConfirmScreen, PathScreen, short_error

if TYPE_CHECKING:
    from tui.train import TrainPane

# (config key, label, widget kind); kinds: input, data (data-set select), choice.
FIELDS = [
    ("model", "Base model", "input"),
    ("train_data", "Data set", "data"),
    ("val_data", "Validation set", "data"),
    ("lora_r", "LoRA r", "input"),
    ("lora_alpha", "LoRA alpha", "input"),
    ("lora_dropout", "LoRA dropout", "input"),
    ("target_modules", "Target modules", "input"),
    ("lr", "Learning rate", "input"),
    ("epochs", "Epochs", "input"),
    ("max_steps", "Max steps", "input"),
    ("batch_size", "Batch size", "input"),
    ("grad_accum", "Grad accum", "input"),
    ("max_seq_len", "Max seq len", "input"),
    ("precision", "Precision", "choice"),
    ("eval_every", "Eval every", "input"),
    ("prompt_template", "Template", "choice"),
    ("val_eval_limit", "Val examples", "input"),
    ("val_constrained", "Val decoding", "choice"),
    ("val_max_new_tokens", "Val max tok", "input"),
    ("val_eval_batch", "Val batch", "input"),
    ("select_by", "Best by", "choice"),
    ("patience", "Patience", "input"),
    ("keep_last", "Keep last", "input"),
]
SELECT_BY = ("json_exact", "field_f1", "val_loss")  # when engine.train.config does not list them
CARDS = [4, 6, 8, 12, 16, 24, 48, 80]
NO_DATA = ""  # the "none" value of the data-set selects
CHECK_DELAY_S = 0.5


def form_fields() -> list[tuple[str, str, str]]:
    """The FIELDS this engine's TrainConfig has (keys it does not know would fail the check)."""
    from engine.train.config import KEYS

    return [field for field in FIELDS if field[0] in KEYS]


def choice_options(key: str) -> list[tuple[str, Any]]:
    """(label, value) choices of a `choice` field, from the engine's own lists."""
    from engine.train import config

    if key == "prompt_template":
        from engine.decode.prompt import TEMPLATES

        return [(t, t) for t in TEMPLATES]
    if key == "select_by":
        return [(s, s) for s in getattr(config, "SELECT_BY", SELECT_BY)]
    if key == "val_constrained":
        return [("constrained", True), ("unconstrained", False)]
    return [(p, p) for p in config.PRECISIONS]


def _show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _problem_key(problem: str) -> str:
    """The config key a problem message is about (its first word), or ''."""
    head = problem.split(":")[0].split(" ")[0].strip()
    return head if any(head == key for key, _, _ in FIELDS) else ""


class TrainForm:
    """The form half of TrainPane (a mixin: it uses the pane's widgets and messages)."""

    _checks_started = False  # set by the pane once it is first shown

    @staticmethod
    def _field_widget(key: str, kind: str, defaults: dict):
        if kind == "input":
            return Input(
                _show_value(defaults.get(key)),
                id=f"f-{key}",
                compact=True,
                classes="form-input",
                select_on_focus=False,
            )
        if kind == "data":
            return Select([], prompt="(none)", id=f"f-{key}", compact=True, classes="form-input")
        options = choice_options(key)
        return Select(
            options,
            id=f"f-{key}",
            value=defaults.get(key, options[0][1]),
            allow_blank=False,
            compact=True,
            classes="form-input",
        )

    def _restore_last_config(self) -> bool:
        """Show the config this form last held for this run log (a small YAML in the cache)."""
        import yaml

        from engine.paths import last_config_path

        try:
            loaded = yaml.safe_load(last_config_path(self.db_path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return False
        if not isinstance(loaded, dict) or not loaded:
            return False
        self.fill_form(loaded)
        return True

    @work(thread=True, exclusive=True, group="train-default-model", exit_on_error=False)
    def _pick_default_model(self) -> None:
        """Offline, the default Hub model may not be here: pick one that is."""
        from engine.models.load import available_model
        from engine.train.config import DEFAULTS

        model = available_model(str(DEFAULTS.get("model")))
        if model != DEFAULTS.get("model"):
            self.post_message(self.Restored(model))

    def on_train_pane_restored(self, message: TrainPane.Restored) -> None:
        from engine.train.config import DEFAULTS

        field = self.query_one("#f-model", Input)
        if field.value.strip() == str(DEFAULTS.get("model")):  # the user has not changed it
            field.value = message.model

    @work(thread=True, exclusive=True, group="train-remember", exit_on_error=False)
    def _remember(self, data: dict) -> None:
        """Keep the form's config for the next start (written atomically)."""
        import os

        import yaml

        from engine.paths import last_config_path

        path = last_config_path(self.db_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            os.replace(tmp, path)
        except (OSError, yaml.YAMLError) as exc:
            self.log.warning(f"cannot remember the training config: {exc}")

    @work(thread=True, exclusive=True, group="train-datasets", exit_on_error=False)
    def _find_datasets(self) -> None:
        try:
            from engine.data.load import discover_datasets

            infos = discover_datasets(self.dataset_paths)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Could not list data sets: {short_error(exc)}", severity="error")
            return
        self.post_message(self.Datasets([(i.name, str(i.path)) for i in infos]))

    def on_train_pane_datasets(self, message: TrainPane.Datasets) -> None:
        for key in ("train_data", "val_data"):
            select = self.query_one(f"#f-{key}", Select)
            current = select.value
            select.set_options(message.options)
            if current != Select.NULL:
                self._select_path(key, str(current))
        if self.query_one("#f-train_data", Select).value == Select.NULL:
            train = [v for label, v in message.options if Path(v).stem == "train"]
            if train or message.options:
                self._select_path("train_data", (train or [message.options[0][1]])[0])
        if self.query_one("#f-val_data", Select).value == Select.NULL:
            val = [v for label, v in message.options if Path(v).stem in ("val", "valid", "dev")]
            if val:
                self._select_path("val_data", val[0])

    def _select_path(self, key: str, path: str | None) -> None:
        """Choose `path` in a data-set select, adding it as an option when it is new."""
        select = self.query_one(f"#f-{key}", Select)
        if not path:
            select.clear()
            return
        options = [(str(label), value) for label, value in select._options if value != Select.NULL]
        resolved = str(Path(path).resolve())
        for _, value in options:
            if str(Path(value).resolve()) == resolved:
                select.value = value
                return
        options.append((path, path))
        select.set_options(options)
        select.value = path

    def set_dataset(self, path: str) -> None:
        """Train on `path` (asked for from the Datasets pane)."""
        self._select_path("train_data", path)
        self.set_view("train-form")
        self.notify(f"Training data set: {path}")

    def form_data(self) -> dict[str, Any]:
        """The config mapping the form describes (values parsed as YAML scalars)."""
        from engine.train.config import ConfigError, parse_override

        data = dict(self.extra)
        for key, _, _kind in form_fields():
            widget = self.query_one(f"#f-{key}")
            if isinstance(widget, Select):
                value = widget.value
                data[key] = None if value == Select.NULL else value
                continue
            text = widget.value.strip()
            if key == "target_modules":
                parts = [p.strip() for p in text.split(",") if p.strip()]
                data[key] = parts[0] if parts == ["all-linear"] else parts
                continue
            try:
                data[key] = parse_override(f"{key}={text}")[1]
            except ConfigError:
                data[key] = text
        return data

    def fill_form(self, config: dict[str, Any]) -> None:
        """Put a config mapping into the form; keys it has no field for are kept aside."""
        shown = {key for key, _, _ in form_fields()}
        self.extra = {k: v for k, v in config.items() if k not in shown}
        for key, _, kind in form_fields():
            if key not in config:
                continue
            value = config[key]
            if kind == "input":
                self.query_one(f"#f-{key}", Input).value = _show_value(value)
            elif kind == "data":
                self._select_path(key, value)
            elif value is not None:
                self._select_choice(key, value)
        self._schedule_check()

    def _select_choice(self, key: str, value: Any) -> None:
        """Choose `value` in a choice field; one the engine does not offer is added, so the
        check shows what is wrong with it instead of the load failing."""
        select = self.query_one(f"#f-{key}", Select)
        options = choice_options(key)
        known = any(v == value and type(v) is type(value) for _, v in options)
        select.set_options(options if known else [*options, (str(value), value)])
        select.value = value

    def on_input_changed(self, event: Input.Changed) -> None:
        self._schedule_check()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._schedule_check()

    def _schedule_check(self) -> None:
        """Validate the form now (cheap) and run the heavier checks once typing pauses."""
        self._show_problems()
        if not self._checks_started:
            return
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(CHECK_DELAY_S, self.run_checks)

    def _model_key(self, data: dict) -> tuple | None:
        model, targets = data.get("model"), data.get("target_modules")
        if not isinstance(model, str) or not model.strip():
            return None
        return (model.strip(), targets if isinstance(targets, str) else tuple(targets or ()))

    def _show_problems(self) -> None:
        from engine.train.config import config_problems

        data = self.form_data()
        key = self._model_key(data)
        pending = key is not None and key not in self._model_checks
        model_found = self._model_checks.get(key, []) if key is not None else []
        self.problems = config_problems(data) + model_found
        self._show_val_source(data)
        by_key: dict[str, list[str]] = {}
        general = []
        for problem in self.problems:
            key = _problem_key(problem)
            (by_key.setdefault(key, []) if key else general).append(problem)
        for key, _, _ in form_fields():
            found = by_key.get(key, [])
            note = self.query_one(f"#p-{key}", Static)
            note.update("[red]" + escape("; ".join(found)) + "[/red]" if found else "")
            note.set_class(bool(found), "-shown")
            self.query_one(f"#f-{key}").set_class(bool(found), "-problem")
        box = self.query_one("#form-problems", Static)
        if self.problems:
            # Every problem in full: the side panel is where a field's cut-off note is read.
            n = len(self.problems)
            box.update(
                f"[red]{n} problem{'s' if n > 1 else ''}:[/red]"
                + "".join(f"\n[red]• {escape(p)}[/red]" for p in self.problems)
            )
        elif pending:
            box.update("[dim]checking the model…[/dim]")
        else:
            box.update("[green]✓ config is valid[/green] (ctrl+l launches)")

    def _show_val_source(self, data: dict) -> None:
        """Say where validation examples come from when no validation file is chosen."""
        from engine.train.config import DEFAULTS

        select = self.query_one("#f-val_data", Select)
        fraction = data.get("val_fraction", DEFAULTS.get("val_fraction"))
        if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction > 0:
            prompt = f"{100 * fraction:g}% of train_data"
        else:
            prompt = "(none)"
        if select.prompt != prompt:
            select.prompt = prompt
            if select.value == Select.NULL:
                select.set_options(
                    [(str(lab), v) for lab, v in select._options if v != Select.NULL]
                )

    def run_checks(self) -> None:
        """Memory estimate and length report for the current config, in a worker."""
        data = self.form_data()
        model = (data.get("model"), data.get("max_seq_len"))
        if model != self._last_model:
            self._last_model = model
            max_len = data.get("max_seq_len") if isinstance(data.get("max_seq_len"), int) else None
            self.post_message(self.ModelChanged(str(data.get("model") or "tiny"), max_len))
        self._remember(data)
        key = self._model_key(data)
        if key is not None and key not in self._model_checks:
            self._check_model(key)
        if self.problems:
            self.query_one("#form-memory", Static).update("")
            self.query_one("#form-lengths", Static).update("")
            return
        card = self.query_one("#f-card", Select).value
        self.query_one("#form-lengths", Static).update("[dim]counting too-long examples…[/dim]")
        self._check(data, float(card), repr(sorted(data.items(), key=str)) + str(card))

    @work(thread=True, exclusive=True, group="train-check", exit_on_error=False)
    def _check(self, data: dict, card_gb: float, key: str) -> None:
        from engine.train.config import config_from_dict

        try:
            cfg = config_from_dict(data)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Checked(key, "", f"[red]{escape(short_error(exc))}[/red]"))
            return
        try:
            from engine.train.data import length_report

            report = length_report(cfg)
        except Exception as exc:  # noqa: BLE001 - shown in the lengths line
            report = exc
        longest = getattr(report, "longest_kept", None) or None
        memory = _memory_text(cfg, card_gb, longest=longest)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.Checked(key, memory, _lengths_text(cfg, report)))

    @work(thread=True, exclusive=True, group="train-model-check", exit_on_error=False)
    def _check_model(self, key: tuple) -> None:
        """Whether the model resolves here (offline too) and has the target modules; reads its
        config only, never its weights."""
        from engine.models.checks import model_problems

        model, targets = key
        try:
            found = model_problems(model, list(targets) if isinstance(targets, tuple) else targets)
        except Exception as exc:  # noqa: BLE001 - a check that fails is itself the problem
            found = [f"model: {short_error(exc)}"]
        self.post_message(self.ModelChecked(key, found))

    def on_train_pane_model_checked(self, message: TrainPane.ModelChecked) -> None:
        self._model_checks[message.key] = message.problems
        self._show_problems()

    def on_train_pane_checked(self, message: TrainPane.Checked) -> None:
        self.query_one("#form-memory", Static).update(message.memory)
        self.query_one("#form-lengths", Static).update(message.lengths)

    def action_load_yaml(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return
            import yaml

            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                self.notify(f"Cannot load {path}: {short_error(exc)}", severity="error")
                return
            if not isinstance(loaded, dict):
                self.notify(
                    f"Cannot load {path}: it must hold a mapping of key: value", severity="error"
                )
                return
            self.yaml_path = path
            self.fill_form(_resolve_paths(loaded, Path(path).resolve().parent))
            self.notify(f"Loaded {path}.")

        self.app.push_screen(PathScreen("Load a training config (YAML)", self.yaml_path), chosen)

    def action_save_yaml(self) -> None:
        from engine.train.config import config_from_dict, save_config

        try:
            cfg = config_from_dict(self.form_data())
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Fix the config first: {short_error(exc)}", severity="error")
            return

        def save(path: str) -> None:
            try:
                save_config(cfg, path)
            except OSError as exc:
                self.notify(f"Cannot save {path}: {short_error(exc)}", severity="error")
                return
            self.yaml_path = path
            self.notify(f"Saved {path}.")

        def chosen(path: str | None) -> None:
            if not path:
                return
            if not Path(path).exists():
                save(path)
                return
            self.app.push_screen(
                ConfirmScreen(f"{path} exists. Overwrite it?", yes="Overwrite", no="Keep it"),
                lambda yes: save(path) if yes else self.notify(f"Not saved; {path} is unchanged."),
            )

        self.app.push_screen(
            PathScreen("Save the training config as (YAML)", self.yaml_path), chosen
        )


def _resolve_paths(config: dict, base: Path) -> dict:
    """Relative data paths in a YAML file mean the working folder, else the file's folder."""
    from engine.train.config import PATH_KEYS

    out = dict(config)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and not Path(value).exists() and (base / value).exists():
            out[key] = str((base / value).resolve())
    return out


def _memory_text(cfg, card_gb: float | None, *, longest: int | None = None) -> str:
    """The memory estimate for the device this machine would train on (checked against its
    available memory, with the changes that fit when it does not), then, when that device is
    not a GPU, the estimate for a CUDA card of `card_gb`."""
    try:
        from engine.models.memory import describe_change, estimate_memory, suggestions

        est = estimate_memory(cfg.model, cfg, longest=longest)
    except Exception as exc:  # noqa: BLE001 - an estimate is advice, not a blocker
        return f"[dim]memory estimate unavailable: {escape(short_error(exc))}[/dim]"
    parts = ", ".join(
        f"{k} {v:.2f}" for k, v in est.breakdown.items() if isinstance(v, (int, float))
    )
    head = f"Memory ≈ {est.total_gb:.2f} GB {est.what} ({est.device}, {est.dtype}): "
    if est.fits:
        lines = [head + f"[green]fits[/green] {escape(est.where())}"]
    else:
        lines = [
            head + f"[red]does not fit[/red] {escape(est.where())}; "
            "launching may be killed for lack of memory"
        ]
        try:
            fixes = suggestions(cfg.model, cfg, est, longest=longest)
        except Exception:  # noqa: BLE001
            fixes = []
        if fixes:
            lines.append(
                "[yellow]fits with: "
                + escape(
                    "; ".join(
                        f"{describe_change(f['change'])} (~{f['estimate_gb']:.1f} GB)"
                        for f in fixes
                    )
                )
                + "[/yellow]"
            )
    lines.append(f"[dim]{parts}[/dim]")
    if est.device != "cuda" and card_gb:
        try:
            gpu = estimate_memory(cfg.model, cfg, card_gb=card_gb, longest=longest)
            verdict = "[green]fits[/green]" if gpu.fits else "[red]does not fit[/red]"
            lines.append(
                f"[dim]on a {card_gb:g} GB GPU (bf16): ≈ {gpu.total_gb:.2f} GB,[/dim] {verdict}"
            )
        except Exception:  # noqa: BLE001
            pass
    return "\n".join(lines)


def _lengths_text(cfg, rep=None) -> str:
    try:
        from engine.train.data import length_report

        if isinstance(rep, Exception):
            raise rep
        rep = rep or length_report(cfg)
    except Exception as exc:  # noqa: BLE001
        return f"[dim]length check unavailable: {escape(short_error(exc))}[/dim]"
    if rep.n_too_long:
        text = (
            f"[yellow]{rep.n_too_long} of {rep.n_total} examples are longer than "
            f"max_seq_len {cfg.max_seq_len} and would be dropped[/yellow]"
        )
    else:
        text = f"[green]all {rep.n_total} examples fit max_seq_len {cfg.max_seq_len}[/green]"
    return text + _load_problems_text(getattr(rep, "skipped", None) or [])


def _load_problems_text(skipped: list[dict]) -> str:
    """A line under the lengths for data lines that could not be loaded (left out)."""
    if not skipped:
        return ""
    n = len(skipped)
    first = skipped[0]
    more = f" (+{n - 1} more; Datasets pane lists them)" if n > 1 else ""
    return (
        f"\n[red]{n} line{'s' if n != 1 else ''} could not be loaded and "
        f"{'are' if n != 1 else 'is'} left out:[/red] "
        f"{escape(first['where'])} {escape(first['kind'])}: "
        f"{escape(first['message'][:120])}{more}"
    )
