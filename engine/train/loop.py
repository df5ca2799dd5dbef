"""The training loop: setup, train, save, clean up, written out in full (no trainer framework).

Loss is computed on target tokens only: the decoder runs on the whole batch, then the LM head
runs only on the positions whose next token is trained (indices computed on the CPU by
`collate`), which skips most of the vocabulary projection and needs no device-side sync.
Losses are summed over tokens and divided by the target-token count of the whole accumulation
window, so every target token weighs the same whatever batch it falls in.
"""

from __future__ import annotations

import contextlib
import functools
import math
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import runlog
from engine.train.checkpoint import load_checkpoint, save_checkpoint
from engine.train.data import (
    TrainData,
    collate,
    epoch_batches,
    n_targets,
    prepare_data,
    steps_per_epoch,
)
from engine.train.select import BestTracker, evaluations, replay, selection_metric, to_delete
from engine.train.val_eval import VAL_METRICS, ValEvaluator

HEARTBEAT_S = 20.0


@dataclass
class Setup:
    model: Any  # a PeftModel
    tok: Any
    data: TrainData
    device: str
    autocast: Any  # torch dtype for autocast, or None for plain fp32


def precision_for(cfg, device: str):
    """(weights dtype, autocast dtype or None) for the config's precision on `device`."""
    import torch

    if cfg.precision == "fp32":
        return torch.float32, None
    if device.startswith("cuda"):
        if cfg.precision == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16, torch.bfloat16
        return torch.float32, None
    if cfg.precision == "bf16":  # explicit bf16 off CUDA: fp32 weights, bf16 autocast
        return torch.float32, torch.bfloat16
    return torch.float32, None


def build_model(cfg, device: str | None = None) -> tuple[Any, Any, str, Any]:
    """The base model with LoRA adapters attached, its tokenizer, device and autocast dtype."""
    import torch
    from peft import LoraConfig, get_peft_model

    from engine.models.load import default_device, load_model

    device = device or default_device()
    weights_dtype, autocast = precision_for(cfg, device)
    base, tok = load_model(cfg.model, device=device, dtype=weights_dtype)
    base.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Recompute each layer's activations in the backward pass: less memory, ~30% more compute.
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # the name in transformers >= 5.x
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    targets = cfg.target_modules if cfg.target_modules == "all-linear" else list(cfg.target_modules)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )
    torch.manual_seed(cfg.seed)  # LoRA A matrices are initialised from the RNG
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # a deprecation inside peft
            model = get_peft_model(base, lora)
    except ValueError as exc:
        raise ValueError(f"target_modules {targets}: {exc}") from exc
    return model, tok, device, autocast


def setup(cfg, device: str | None = None, log: Callable[[str], None] = print) -> Setup:
    model, tok, device, autocast = build_model(cfg, device)
    data = prepare_data(cfg, tok)
    log(data.report.message())
    return Setup(model, tok, data, device, autocast)


def TargetLoss(model, device: str, autocast):
    """The training loss as an nn.Module around the PeftModel: `forward(batch)` returns the
    summed cross-entropy over the batch's target tokens (prompt and pads contribute nothing)
    and their count. Being a module's forward, it can run under DistributedDataParallel, whose
    gradient synchronisation hooks on forward."""
    return _target_loss_class()(model, device, autocast)


@functools.cache
def _target_loss_class():
    import torch
    import torch.nn.functional as F

    class _TargetLoss(torch.nn.Module):
        def __init__(self, model, device: str, autocast):
            super().__init__()
            self.model, self.where, self.autocast = model, device, autocast

        def forward(self, batch: dict):
            device, autocast = self.where, self.autocast
            base = self.model.get_base_model()
            ids = batch["input_ids"].to(device, non_blocking=True)
            mask = batch["attention_mask"].to(device, non_blocking=True)
            index = batch["target_index"].to(device, non_blocking=True)
            targets = batch["targets"].to(device, non_blocking=True)
            kind = device.split(":")[0]
            with torch.autocast(
                kind, dtype=autocast or torch.float32, enabled=autocast is not None
            ):
                hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
                hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, index)
                logits = base.get_output_embeddings()(hidden)
            loss = F.cross_entropy(logits.float(), targets, reduction="sum")
            return loss, batch["n_target"]

    return _TargetLoss


def target_loss_sum(model, batch: dict, device: str, autocast):
    """Summed cross-entropy over a batch's target tokens (see TargetLoss)."""
    return TargetLoss(model, device, autocast)(batch)[0]


def evaluate_loss(s: Setup, batch_size: int) -> float | None:
    """Mean target-token loss over the validation slice (one sync at the end)."""
    import torch

    if not s.data.val:
        return None
    items = sorted(s.data.val, key=len)
    total, count = None, 0
    s.model.eval()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = collate(items[start : start + batch_size], s.tok.pad_token_id)
            loss = target_loss_sum(s.model, batch, s.device, s.autocast)
            total = loss if total is None else total + loss
            count += batch["n_target"]
    s.model.train()
    return total.item() / max(count, 1)


def make_optimizer(cfg, model, total_steps: int):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if params and params[0].is_cuda else {}
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    warmup = math.ceil(cfg.warmup_ratio * total_steps)

    def schedule(step: int) -> float:
        """Linear warmup, then cosine decay to zero at the last step."""
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def plan(cfg, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps)."""
    spe = steps_per_epoch(n_train, cfg.batch_size, cfg.grad_accum * getattr(cfg, "nproc", 1))
    total = spe * cfg.epochs
    return spe, min(total, cfg.max_steps) if cfg.max_steps else total


def _gpu_metrics(device: str) -> dict[str, float]:
    import torch

    from engine.models.memory import peak_rss_gb

    if not device.startswith("cuda"):
        return {"peak_rss_gb": peak_rss_gb()}
    return {
        "gpu_mem_gb": torch.cuda.memory_allocated() / 2**30,
        "gpu_peak_gb": torch.cuda.max_memory_allocated() / 2**30,
        "gpu_reserved_peak_gb": torch.cuda.max_memory_reserved() / 2**30,
    }


def memory_record(cfg, s: Setup) -> dict:
    """The memory estimate for this run's device, recorded in its summary beside the measured
    peak (filled in at the end by measured_memory)."""
    from engine.models.memory import estimate_memory

    try:
        est = estimate_memory(
            cfg.model,
            cfg,
            longest=s.data.report.longest_kept or None,
            device=s.device.split(":")[0],
        )
    except Exception as exc:  # noqa: BLE001 - an estimate is advice; the run goes on
        return {"memory_estimate_error": str(exc)}
    return {
        "memory_device": est.device,
        "memory_estimate_gb": est.total_gb,
        "memory_estimate_parts": est.breakdown,
    }


def measured_memory(record: dict, device: str) -> dict:
    """The measured peak beside the estimate, and their ratio (measured / estimated)."""
    from engine.models.memory import peak_memory

    out = dict(record)
    peak = peak_memory(device)
    out.update({k: round(v, 3) for k, v in peak.items()})
    cuda = device.startswith("cuda")
    out["peak_memory_kind"] = "cuda_reserved" if cuda else "rss"
    if record.get("memory_estimate_gb"):
        # The allocator's peak does not see the CUDA context: compare it without that term.
        expected = record["memory_estimate_gb"] - (
            (record.get("memory_estimate_parts") or {}).get("runtime", 0) if cuda else 0
        )
        out["memory_ratio"] = round(peak["peak_memory_gb"] / max(expected, 1e-9), 3)
    return out


def train(
    cfg,
    db,
    run_id: int,
    out_dir: Path,
    *,
    resume_from: Path | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int, int, dict | None], None] | None = None,
    log: Callable[[str], None] = print,
    device: str | None = None,
    micro_batch: int | None = None,
    group: Any = None,
) -> dict:
    """Train `cfg` as run `run_id`; returns a summary with status `completed` or `cancelled`.

    `micro_batch` (a divisor of `cfg.batch_size`, set by a resume that lowers memory use) splits
    every batch into micro-batches of that size: the same examples per step, less memory.

    `stop` is checked after every optimizer step and during evaluations: when set, a checkpoint
    is saved and the run ends `cancelled`. `progress(step, total, metrics_or_None)` is called
    after every step. Evaluations (val_loss, then the decoded val_* metrics) run every
    `eval_every` steps, at every periodic save and at the last step; an evaluation that finds a
    new best (`select_by`) saves a checkpoint there, so the best is always kept. `patience`
    evaluations without improvement end the run early (`completed`, `stopped_early`).

    `group` (engine.train.distributed.Group): this process is one rank of a data-parallel run;
    only rank 0 (which gets `db`) writes the run log, checkpoints and the adapter and evaluates.
    """
    import torch

    from engine.decode.generate import Cancelled

    stop = stop or threading.Event()
    out_dir = Path(out_dir)
    if group is not None and group.is_main:  # the other ranks train what rank 0 was given
        group.share((cfg.to_dict(), str(out_dir), resume_from and str(resume_from), micro_batch))
    main = group is None or group.is_main
    rank, world = (group.rank, group.world) if group is not None else (0, 1)
    s = setup(cfg, group.device if group is not None else device, log if main else _quiet)
    model, data = s.model, s.data
    loss_fn = TargetLoss(model, s.device, s.autocast)
    if group is not None:
        loss_fn = group.wrap(loss_fn)
    spe, total = plan(cfg, len(data.train))
    optimizer, scheduler = make_optimizer(cfg, model, total)
    lengths = [len(e) for e in data.train]
    val_eval = ValEvaluator(cfg, s)
    metric = selection_metric(cfg.select_by, val_eval.enabled)
    tracker = BestTracker(metric)
    step, prior_elapsed, prior_eval_s = 0, 0.0, 0.0
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, scheduler)
        step, prior_elapsed = state["step"], state.get("elapsed_s", 0.0)
        prior_eval_s = state.get("val_eval_s_total", 0.0)
        if main:
            tracker = replay(metric, evaluations(runlog.metrics(db, run_id)))
            log(f"resumed from {resume_from} at step {step} of {total}")
    elif main:
        runlog.log_metrics(db, run_id, 0, {"total_steps": total, "steps_per_epoch": spe})
    if main:
        remove_stale_tmp(out_dir)
    if s.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    mem_record = memory_record(cfg, s)
    if main:
        runlog.update_run(
            db,
            run_id,
            summary={**_summary(cfg, data, step, total, None, None, prior_elapsed), **mem_record},
        )
    model.train()
    optimizer.zero_grad(set_to_none=True)

    def save(at_step: int, metrics: dict, final: bool = False) -> Path:
        state = {
            "step": at_step,
            "epoch": at_step / spe,
            "total_steps": total,
            "elapsed_s": prior_elapsed + (time.monotonic() - t0),
            "val_eval_s_total": prior_eval_s + val_eval.total_s,
        }
        path = save_checkpoint(out_dir, model, optimizer, scheduler, state)
        runlog.add_checkpoint(
            db, run_id, at_step, str(path), epoch=at_step / spe, is_final=final, metrics=metrics
        )
        if tracker.best_step == at_step:
            runlog.set_best_checkpoint(db, run_id, at_step)
        apply_retention(db, run_id, cfg.keep_last, out_dir)
        return path

    def eval_cancel() -> bool:
        """The stop flag, polled per token during decoding; keeps the heartbeat fresh too."""
        nonlocal last_hb
        if time.monotonic() - last_hb > HEARTBEAT_S:
            runlog.heartbeat(db, run_id)
            last_hb = time.monotonic()
        return stop.is_set()

    t0 = time.monotonic()
    last_log_t, last_hb, start_step = t0, t0, step
    window_loss, window_targets, window_tokens = None, 0, 0
    grad_norm = None
    epoch_cache: dict[int, list[list[int]]] = {}
    last: dict[str, float] = {}
    status, stop_reason = "completed", None
    eval_metrics: dict = {}  # the validation metrics of the last evaluation
    while step < total:
        epoch, k = divmod(step, spe)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)}
        n_micro = cfg.grad_accum * getattr(cfg, "nproc", 1)
        micro = epoch_cache[epoch][k * n_micro : (k + 1) * n_micro]
        if micro_batch:
            micro = [b[j : j + micro_batch] for b in micro for j in range(0, len(b), micro_batch)]
        # The target count of the whole step (every rank's micro-batches), from the lengths.
        denom = sum(n_targets([data.train[i] for i in idx]) for idx in micro)
        # Rank r takes micro-batches r, r+N, ...; DDP averages the ranks' gradients, so each
        # scales its loss by N: the sum is the one-process gradient.
        mine, weight = micro[rank::world], world
        if not mine:  # fewer micro-batches than ranks (an epoch's end): a zero-weight pass
            mine, weight = micro[:1], 0
        batches = [collate([data.train[i] for i in idx], s.tok.pad_token_id) for idx in mine]
        for i, batch in enumerate(batches):
            last_micro = i == len(batches) - 1
            with loss_fn.no_sync() if group is not None and not last_micro else _no_op():
                loss_sum, _ = loss_fn(batch)
                (loss_sum * weight / denom).backward()
            if weight:
                window_loss = (
                    loss_sum.detach() if window_loss is None else window_loss + loss_sum.detach()
                )
                window_tokens += batch["n_tokens"]
        window_targets += denom
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        metrics = None
        now = time.monotonic()
        if step % cfg.log_every == 0 or step == total:
            # .item() here is the one CPU-GPU sync point of a logging step.
            span = max(now - last_log_t, 1e-9)
            per_step = (now - t0) / (step - start_step)
            if group is not None:  # every rank's share of the window
                window_loss, window_tokens = group.sum([_or0(window_loss), window_tokens])
            metrics = {
                "train_loss": float(window_loss) / max(window_targets, 1),
                "lr": lr,
                "grad_norm": float(grad_norm.item()),
                "tokens_per_s": window_targets / span,
                "tokens_per_s_all": window_tokens / span,
                "epoch": step / spe,
                "elapsed_s": prior_elapsed + now - t0,
                "eta_s": per_step * (total - step),
                **_gpu_metrics(s.device),
            }
            window_loss, window_targets, window_tokens, last_log_t = None, 0, 0, now
        periodic_save = step % cfg.save_every == 0 and step < total
        improved = False
        if main and (step % cfg.eval_every == 0 or step == total or periodic_save):
            eval_metrics = {"val_loss": evaluate_loss(s, micro_batch or cfg.batch_size)}
            try:
                eval_metrics.update(val_eval(eval_cancel) or {})
            except Cancelled:
                log(f"evaluation at step {step} cancelled")
            if "val_eval_s" in eval_metrics:
                spent = prior_eval_s + val_eval.total_s
                run_s = prior_elapsed + time.monotonic() - t0
                eval_metrics["val_eval_share"] = spent / max(run_s, 1e-9)
            improved = tracker.update(step, eval_metrics.get(metric), eval_metrics["val_loss"])
            metrics = {**(metrics or {}), **eval_metrics}
            now = time.monotonic()
        if metrics and main:
            runlog.log_metrics(db, run_id, step, metrics)
            last.update({k: v for k, v in metrics.items() if v is not None})
            last_hb = now
        elif main and now - last_hb > HEARTBEAT_S:
            runlog.heartbeat(db, run_id)
            last_hb = now
        if progress:
            progress(step, total, metrics)
        at_eval = _at(eval_metrics, metrics)
        stopping = stop.is_set()
        early = bool(step < total and at_eval and tracker.should_stop(cfg.patience))
        if group is not None:  # the ranks stop together: any rank's stop, rank 0's decision
            stopping, early = group.any(stopping, early)
        if stopping and step < total:
            if main:
                save(step, at_eval)
            status = "cancelled"
            log(f"stopped at step {step} of {total}; checkpoint saved")
            break
        if early:
            stop_reason = tracker.stop_reason(cfg.patience) if main else "rank 0 stopped early"
            log(f"stopping early at step {step} of {total}: {stop_reason}")
            break
        if (periodic_save or improved) and step < total and main:
            save(step, at_eval)

    if not main:
        return {"status": status}
    if status == "completed":
        save(step, _at(eval_metrics, metrics), final=True)
        adapter = out_dir / "adapter"
        model.save_pretrained(adapter)
        runlog.update_run(db, run_id, adapter=str(adapter))
    elapsed = prior_elapsed + time.monotonic() - t0
    summary = _summary(
        cfg, data, step, total, last.get("train_loss"), last.get("val_loss"), elapsed
    )
    eval_s = prior_eval_s + val_eval.total_s
    summary.update(
        status=status,
        select_by=cfg.select_by,
        stopped_early=stop_reason is not None,
        stop_reason=stop_reason,
        val_eval_s_total=round(eval_s, 2),
        val_eval_share=eval_s / elapsed if elapsed > 0 else None,
        val_eval_examples=len(val_eval.examples),
        **measured_memory(mem_record, s.device),
        **{k: last[k] for k in VAL_METRICS if k in last},
        **best_summary(db, run_id, metric),
    )
    return summary


def _quiet(message: str) -> None:
    """The log of ranks other than 0 (rank 0 reports the data and the run)."""


def _no_op():
    return contextlib.nullcontext()


def _or0(value):
    return 0.0 if value is None else value


def _at(eval_metrics: dict, metrics: dict | None) -> dict:
    """The validation metrics of this step (empty when this step did not evaluate)."""
    return dict(eval_metrics) if metrics and "val_loss" in metrics else {}


def best_summary(db, run_id: int, metric: str) -> dict:
    """best_step, best_metric {name, value} and best_metrics for a run's summary."""
    best = runlog.best_checkpoint(db, run_id)
    if best is None:
        return {"best_step": None, "best_metric": None, "best_metrics": None}
    return {
        "best_step": best["step"],
        "best_metric": {"name": metric, "value": best["metrics"].get(metric)},
        "best_metrics": best["metrics"],
    }


def remove_stale_tmp(out_dir: Path) -> None:
    """Half-written checkpoint folders (`.tmp-step-*`) left by a crash."""
    folder = Path(out_dir) / "checkpoints"
    if folder.is_dir():
        for tmp in folder.glob(".tmp-step-*"):
            shutil.rmtree(tmp, ignore_errors=True)


def apply_retention(db, run_id: int, keep_last: int, out_dir: Path) -> list[int]:
    """Keep the last `keep_last` checkpoints and the best; delete the others' folders and rows."""
    rows = runlog.checkpoints(db, run_id)
    best = runlog.best_checkpoint(db, run_id)
    doomed = to_delete([r["step"] for r in rows], best["step"] if best else None, keep_last)
    paths = {r["step"]: Path(r["path"]) for r in rows}
    for step in doomed:
        shutil.rmtree(paths[step], ignore_errors=True)
        runlog.delete_checkpoint(db, run_id, step)
    remove_stale_tmp(out_dir)
    return doomed


def _summary(cfg, data: TrainData, step, total, train_loss, val_loss, elapsed) -> dict:
    return {
        "step": step,
        "total_steps": total,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "elapsed_s": round(elapsed, 2),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_too_long": data.report.n_too_long,
        "too_long_ids": data.report.too_long_ids[:100],
        "longest": data.report.longest,
        "effective_batch": cfg.effective_batch,
        # Data lines that could not be loaded, so were not trained on ({where, kind, message}).
        "n_skipped_lines": len(data.report.skipped),
        "skipped_lines": data.report.skipped[:100],
    }
