"""`schemalab eval`, `schemalab score`, `schemalab show` and `schemalab compare`: evaluate a model
on a data set or score outputs produced elsewhere, drill into the failing examples, and compare two
evaluations. Heavy imports happen in handlers."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import add_db_argument, run_id_arg
from engine.decode.prompt import TEMPLATES
from engine.evaluate.metrics import FAILURE_ORDER
from engine.evaluate.protocols import DEFAULT_PROTOCOL, PROTOCOLS

PROTOCOL_HELP = (
    "schemalab (default: this project's prompt and strict parse) or edgejson (the "
    "published EdgeJSON harness exactly; see README 'Two protocols')"
)


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a JSONL data set",
        description="Generate an answer for every example, score it and record "
        "the evaluation (every prediction included) in the run log.",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="SPEC",
        help="tiny, smollm2-135m-instruct, a model folder, a .gguf file or a Hub id",
    )
    p.add_argument(
        "--adapter", metavar="RUN_ID|PATH", help="LoRA adapter: a training run id or a folder"
    )
    p.add_argument("--data", required=True, metavar="FILE.jsonl")
    p.add_argument(
        "--schemas", metavar="DIR", help="schema folder (default: schemas/ beside the data)"
    )
    p.add_argument("--decoding", metavar="PRESET", help="greedy (default), loop-guard or sample")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        dest="overrides",
        help="override a decoding setting, e.g. --set max_new_tokens=512 (repeatable)",
    )
    p.add_argument("--constrained", action="store_true", help="force schema-valid JSON (xgrammar)")
    p.add_argument(
        "--formats",
        choices=["lenient", "strict"],
        help="format strictness (default: lenient if the data has date-times without zone)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="first N examples only")
    p.add_argument("--batch-size", type=int, default=8, metavar="N")
    p.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    p.add_argument("--format", choices=["table", "json"], default="table", dest="output_format")
    p.add_argument(
        "--export-seed-format",
        metavar="FILE",
        help="also write the published EdgeJSON harness layout to FILE",
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL, help=PROTOCOL_HELP)
    p.add_argument(
        "--prompt-template",
        choices=TEMPLATES,
        metavar="NAME",
        help=f"one of {', '.join(TEMPLATES)} (default: the adapter's training "
        "template, else schemalab; edgejson under --protocol edgejson)",
    )
    add_db_argument(p)
    p.set_defaults(handler=run_eval)

    p = sub.add_parser(
        "score",
        help="score model outputs produced elsewhere",
        description="Score outputs produced elsewhere (an API, llama.cpp, vLLM, "
        'another harness), one {"id": ..., "output": "raw model text"} per line, '
        "against a data set, and record them as an evaluation, so show, compare "
        "and the workbench work on them.",
    )
    p.add_argument("--data", required=True, metavar="FILE.jsonl")
    p.add_argument(
        "--predictions",
        required=True,
        metavar="PRED.jsonl",
        help='one {"id": ..., "output": "raw model text"} per line',
    )
    p.add_argument(
        "--schemas", metavar="DIR", help="schema folder (default: schemas/ beside the data)"
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL, help=PROTOCOL_HELP)
    p.add_argument(
        "--formats",
        choices=["lenient", "strict"],
        help="format strictness (default: lenient if the data has date-times without zone)",
    )
    p.add_argument("--format", choices=["table", "json"], default="table", dest="output_format")
    p.add_argument(
        "--export-seed-format",
        metavar="FILE",
        help="also write the published EdgeJSON harness layout to FILE",
    )
    add_db_argument(p)
    p.set_defaults(handler=run_score)

    p = sub.add_parser(
        "show",
        help="an evaluation's failing examples with their diffs, or a "
        "training run's checkpoints, best checkpoint and metric series",
        description="For an evaluation: its failing examples with their diffs. For "
        "a training run: config, summary, checkpoints with their validation metrics "
        "(which is best) and every metric series.",
    )
    p.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
    p.add_argument("--schema", metavar="NAME", help="evaluations: only this schema")
    p.add_argument(
        "--failure",
        choices=FAILURE_ORDER,
        metavar="CATEGORY",
        help=f"evaluations: one of {', '.join(FAILURE_ORDER)}",
    )
    p.add_argument(
        "--limit", type=int, default=20, metavar="N", help="evaluations: at most N examples"
    )
    p.add_argument("--format", choices=["table", "json"], default="table", dest="output_format")
    add_db_argument(p)
    p.set_defaults(handler=run_show)

    p = sub.add_parser("compare", help="per-schema and per-complexity deltas of two evaluations")
    p.add_argument("eval_a", type=run_id_arg, metavar="EVAL_A")
    p.add_argument("eval_b", type=run_id_arg, metavar="EVAL_B")
    p.add_argument("--format", choices=["table", "json"], default="table", dest="output_format")
    add_db_argument(p)
    p.set_defaults(handler=run_compare)


def _err(message: str) -> int:
    print(f"schemalab: error: {message}", file=sys.stderr)
    return 2


def run_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from engine.decode.generate import DecodingError, decoding_from
    from engine.evaluate import run as evaluate
    from engine.models.load import ModelError

    cfg = None
    if args.protocol == "edgejson":
        if args.decoding or args.overrides or args.constrained:
            return _err(
                "--protocol edgejson decodes as the published harness does (greedy, "
                "unconstrained, to EOS, at most 512 new tokens); drop --decoding, --set "
                "and --constrained, or use --protocol schemalab"
            )
    else:
        try:
            cfg = decoding_from(args.decoding or "greedy", args.overrides)
        except DecodingError as exc:
            return _err(str(exc))
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("JSONExact {task.fields[exact]}"),
        console=err,
        transient=True,
    )
    task = progress.add_task("eval", total=None, exact="-")

    def on_progress(done: int, total: int, exact: float) -> None:
        progress.update(task, completed=done, total=total, exact=f"{exact:.1%}")

    if args.batch_size < 1:
        return _err(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        return _err(
            f"--limit must be at least 1, got {args.limit} (leave it out for every example)"
        )
    import signal
    import threading

    def on_term(signum, frame):  # SIGTERM stops like Ctrl-C: the run ends `cancelled`
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        with progress:
            run_id = evaluate.run_evaluation(
                args.db,
                args.model,
                args.data,
                adapter=args.adapter,
                schemas_dir=args.schemas,
                decoding=cfg,
                constrained=args.constrained,
                limit=args.limit,
                batch_size=args.batch_size,
                progress=on_progress,
                formats=args.formats,
                device=args.device,
                protocol=args.protocol,
                prompt_template=args.prompt_template,
            )
    except (evaluate.EvaluationError, DecodingError, ModelError) as exc:
        return _err(str(exc))
    finally:
        if main:
            signal.signal(signal.SIGTERM, old_term)
    report = evaluate.load_report(args.db, run_id)
    if report.get("template_warning"):
        err.print(f"[yellow]warning:[/] {report['template_warning']}", markup=True, highlight=False)
    if args.export_seed_format:
        path = evaluate.export_seed_format(args.db, run_id, args.export_seed_format)
        err.print(f"wrote {path} (EdgeJSON harness layout)")
    if args.output_format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_report(Console(), report)
    return 0 if report.get("status") == "completed" else 1


def run_score(args: argparse.Namespace) -> int:
    from rich.console import Console

    from engine.evaluate import run as evaluate

    try:
        run_id = evaluate.run_scoring(
            args.db,
            args.data,
            args.predictions,
            schemas_dir=args.schemas,
            protocol=args.protocol,
            formats=args.formats,
        )
    except evaluate.EvaluationError as exc:
        return _err(str(exc))
    report = evaluate.load_report(args.db, run_id)
    shown: dict[str, int] = {}
    for f in report.get("findings") or []:  # at most 10 of each kind; all are in the report
        shown[f["kind"]] = shown.get(f["kind"], 0) + 1
        if shown[f["kind"]] <= 10:
            print(f"{f['where']}: {f['kind']}: {f['message']}", file=sys.stderr)
    for kind, n in shown.items():
        if n > 10:
            print(
                f"... {n - 10} more {kind} findings (all in the report: --format json)",
                file=sys.stderr,
            )
    if args.export_seed_format:
        path = evaluate.export_seed_format(args.db, run_id, args.export_seed_format)
        print(f"wrote {path} (EdgeJSON harness layout)", file=sys.stderr)
    if args.output_format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_report(Console(), report)
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{x:.1%}"


def _print_report(console, report: dict) -> None:
    from rich.table import Table

    o = report["overall"]
    console.print(
        f"[bold]Evaluation {report['run_id']}[/] ({report['status']}): {report['model']}"
        f"{' + ' + report['adapter'] if report.get('adapter') else ''} on {report['data']}, "
        f"{'constrained' if report['constrained'] else 'unconstrained'}, formats "
        f"{report['formats']} ({report['formats_reason']}), protocol "
        f"{report.get('protocol', 'schemalab')}"
        + (
            f", prompt template {report['prompt_template']}"
            if report.get("prompt_template")
            else ""
        )
    )
    head = ("", "n", "exact", "fieldF1", "leafF1", "valid", "compl.", "parsed")

    def row(name, g):
        return (
            name,
            str(g.get("n", 0)),
            _pct(g.get("json_exact")),
            f"{g.get('field_f1', 0):.3f}",
            f"{g.get('leaf_f1', 0):.3f}",
            _pct(g.get("schema_valid")),
            _pct(g.get("compliance")),
            _pct(g.get("parse_rate")),
        )

    t = Table(*head, title="Overall and by complexity")
    t.add_row(*row("overall", o))
    for c, g in report["by_complexity"].items():
        t.add_row(*row(c + (f" ({g['inferred']} inferred)" if g.get("inferred") else ""), g))
    console.print(t)
    worst = sorted(
        report["by_schema"].items(), key=lambda kv: (kv[1]["json_exact"], kv[1]["field_f1"])
    )
    t = Table(*head[:6], "top failure", title="Schemas, worst first")
    for name, g in worst[:10]:
        fails = report["by_schema_failure"].get(name, {})
        top = max(fails, key=fails.get) if fails else "-"
        t.add_row(*row(name, g)[:6], top)
    console.print(t)
    t = Table("failure", "n", title="Failure categories")
    for name, n in report["by_failure"].items():
        t.add_row(name, str(n))
    console.print(t)
    if report.get("source") == "predictions":
        console.print(f"{report.get('note')}; {len(report.get('findings') or [])} finding(s)")
    else:
        console.print(
            f"{o.get('n_tokens', 0)} tokens in {o.get('generation_s', 0):.1f} s: "
            f"{o.get('tokens_per_s', 0):.1f} tokens/s, {o.get('examples_per_s', 0):.2f} examples/s"
        )
    if report.get("constrained"):
        console.print(
            f"loop guard closed a runaway array or string in {_pct(o.get('loop_guard'))}"
            f" of answers; {_pct(o.get('truncated'))} still hit max_new_tokens"
        )
    gd = report.get("grammar_disagrees")
    if gd:
        console.print(
            f"grammar rejects {gd['count']} expected output(s)"
            + "".join(f"\n  {e['example_id']}: {e['reason']}" for e in gd["examples"][:5])
        )
    console.print(
        f"drill down: schemalab show {report['run_id']} [--schema NAME] [--failure CATEGORY]"
    )


def run_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine import runlog
    from engine.evaluate import run as evaluate

    db = runlog.connect_readonly(args.db)  # a read: never creates, migrates or writes
    run = runlog.get_run(db, args.run_id)
    if run is not None and run["kind"] == "train":
        from engine.commands.show_train import show_train

        return show_train(args, db, run)
    try:
        report = evaluate.load_report(db, args.run_id)
    except evaluate.EvaluationError as exc:
        return _err(str(exc))
    if report.get("partial"):
        Console(stderr=True).print(f"[yellow]note:[/] {escape(report['partial'])}")
    rows = evaluate.predictions(
        db, args.run_id, schema=args.schema, failure=args.failure or "failing", limit=args.limit
    )
    if args.output_format == "json":
        print(
            json.dumps(
                {"run": report, "predictions": rows}, indent=2, ensure_ascii=False, default=str
            )
        )
        return 0
    console = Console()
    if not rows:
        console.print("no failing examples match")
        return 0
    for r in rows:
        console.print(
            f"[bold]{escape(r['example_id'])}[/] {r['schema_id']} ({r['complexity']}): "
            f"[red]{r['failure']}[/], field F1 {r['field_f1']:.2f}, {r['n_tokens']} tokens"
            + (f", parse error: {escape(r['parse_error'])}" if r["parse_error"] else "")
        )
        for d in r["diff"][:15]:
            if d["kind"] == "schema_error":
                console.print(f"  {escape(d['path'])}: schema: {escape(d.get('message', ''))}")
                continue
            flag = " [yellow](not in prompt)[/]" if d.get("ungrounded") else ""
            console.print(
                f"  {escape(d['path'])}: {d['kind']}: expected "
                f"{escape(_short(d['expected']))}, got {escape(_short(d['got']))}{flag}"
            )
        if len(r["diff"]) > 15:
            console.print(f"  ... {len(r['diff']) - 15} more")
        if r["parsed"] is None:
            console.print(f"  output: {escape(_short(r['output_text'], 160))}")
    return 0


def _short(value, width: int = 60) -> str:
    text = value if isinstance(value, str) and width > 60 else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def run_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from engine import runlog
    from engine.evaluate import run as evaluate

    try:
        result = evaluate.compare(runlog.connect_readonly(args.db), args.eval_a, args.eval_b)
    except evaluate.EvaluationError as exc:
        return _err(str(exc))
    if args.output_format == "json":
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    console = Console()

    def cell(m):
        if m["delta"] is None:
            return "-"
        return f"{_pct(m['a'])} -> {_pct(m['b'])} ([{'green' if m['delta'] >= 0 else 'red'}]{m['delta']:+.1%}[/])"

    for title, groups in (
        ("Overall", {"overall": result["overall"]}),
        ("By complexity", result["by_complexity"]),
        ("By schema", result["by_schema"]),
    ):
        t = Table("", "n A/B", "JSONExact", "field F1", "schema valid", title=f"{title}: B - A")
        for name, g in groups.items():
            t.add_row(
                name,
                f"{g['n_a']}/{g['n_b']}",
                cell(g["json_exact"]),
                cell(g["field_f1"]),
                cell(g["schema_valid"]),
            )
        console.print(t)
    for key, label in (("pass_to_fail", "pass -> fail"), ("fail_to_pass", "fail -> pass")):
        flips = result[key]
        console.print(f"[bold]{label}[/]: {len(flips)}")
        for f in flips[:20]:
            console.print(
                f"  {f['example_id']} ({f['schema_id']}): {f['failure_a']} -> {f['failure_b']}"
            )
    return 0
