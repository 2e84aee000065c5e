"""The training worker: `smolora train --project NAME` runs this in its own process.

LoRA fine-tuning with TRL's SFTTrainer and PEFT. Everything the outside world
sees goes through the run folder (see runs.py): the frozen settings, the events
(from a TrainerCallback, never from scraped logs), checkpoints and the adapter.
SIGTERM asks for a checkpoint at the next step boundary and a `stopped` event.

Speed (measured by bench/train_throughput.py against SmoLoRA's recipe): no
gradient checkpointing, batch 1 without padding, glibc told to keep freed
memory, and the loss computed from the LM head at the trained positions only,
instead of full-vocabulary logits (plus TRL's entropy and accuracy metrics over
them) at every position.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import events as ev
from .fsutil import atomic_write_text, give_normal_modes
from .project import Project, project_from_dict
from .runs import (
    COMPLETE_MARKER, HEARTBEAT_S, checkpoints, console_text, describe_event, duration, latest_complete_checkpoint,
    list_run_ids, new_run_id, process_alive, process_start_time, read_run_settings, run_dir, running_holder, summarize,
    training_lock,
)


class TrainingRefused(Exception):
    """Training cannot start (a setting, the memory, the data); the message says what to change."""


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it (and page-faulting it back) every step.

    Worth it without gradient checkpointing, where every step allocates and frees
    large activations; with checkpointing it only raises the peak (see the bench).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


# ------------------------------------------------------------------ events, thread-safe

class Emitter:
    """Writes the run's events.jsonl; with `echo`, also says each one on stdout (the console, or worker.log)."""

    def __init__(self, path: Path, echo: bool = False):
        self._writer = ev.EventWriter(path)
        self._lock = threading.Lock()
        self._echo = echo
        self.step: int | None = None

    def __call__(self, event: ev.Event) -> ev.Event:
        with self._lock:
            written = self._writer.emit(event)
            described = describe_event(event) if self._echo else None
            if described:
                print(console_text(*described), flush=True)
            return written

    def close(self) -> None:
        with self._lock:
            self._writer.close()


class Heartbeat(threading.Thread):
    def __init__(self, emit: Emitter):
        super().__init__(daemon=True, name="smolora-heartbeat")
        self.emit = emit
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            self.emit(ev.Heartbeat(pid=os.getpid(), step=self.emit.step))


# ------------------------------------------------------------------ memory

def memory_in_use_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def available_memory_mb(device: str) -> float | None:
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return free / 2**20
    import psutil

    return psutil.virtual_memory().available / 2**20


def estimate_memory_mb(project: Project, longest: int, device: str, dtype: str) -> dict[str, float] | None:
    """The settings screen's estimate (estimate.py), for the longest sample this run really has (MB)."""
    from .estimate import FactsError, estimate_for, read_facts
    from .models import ensure_model

    try:
        facts = read_facts(ensure_model(project.model.base))  # loaded already: no conversion happens here
    except FactsError:
        return None
    estimate = estimate_for(facts, project, device, longest=longest, dtype=dtype)
    mb = 2**20
    detail = {name: size / mb for name, size in estimate.parts()}
    detail["total"] = estimate.total / mb
    return detail


# ------------------------------------------------------------------ the trainer

def make_trainer_class():
    """SFTTrainer with a loss computed from the LM head at the trained positions only."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from trl import SFTTrainer

    from .loss import frozen_head_cross_entropy_sum, head_is_frozen_linear

    class SmoloraTrainer(SFTTrainer):
        fast_loss = True
        tokens_seen = 0

        def _causal_lm(self, model):
            inner = self.accelerator.unwrap_model(model)
            if hasattr(inner, "get_base_model"):
                inner = inner.get_base_model()
            return inner

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                mask = inputs.get("attention_mask")
                self.tokens_seen += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            lm = self._causal_lm(model)
            config = lm.config
            distributed = self.accelerator.num_processes > 1  # DDP must see its own forward
            if (not self.fast_loss or distributed or getattr(config, "final_logit_softcapping", None)
                    or getattr(config, "logit_scale", None) or not hasattr(lm, "get_decoder")):
                inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "labels",
                                                                   "position_ids")}
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            hidden = lm.get_decoder()(
                input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                position_ids=inputs.get("position_ids"), use_cache=False,
            ).last_hidden_state
            target = labels[:, 1:]
            keep = target != -100
            head = lm.get_output_embeddings()
            if head_is_frozen_linear(head):
                loss_sum = frozen_head_cross_entropy_sum(hidden[:, :-1][keep], head, target[keep])
            else:  # a trained head (modules_to_save, LoRA on lm_head) needs its own gradients
                loss_sum = F.cross_entropy(head(hidden[:, :-1][keep]).float(), target[keep], reduction="sum")
            if num_items_in_batch is not None:
                denominator = torch.as_tensor(num_items_in_batch, device=loss_sum.device).clamp(min=1)
            else:
                denominator = keep.sum().clamp(min=1)
            loss = loss_sum / denominator
            return (loss, {"loss": loss}) if return_outputs else loss

    return SmoloraTrainer


@dataclass
class RunState:
    """What the callback carries across log events (restored from a checkpoint on resume)."""

    tokens_before: int = 0  # tokens of earlier segments of a resumed run
    elapsed_before: float = 0.0
    best_eval: float | None = None
    best_step: int | None = None


def make_callback(emit: Emitter, folder: Path, project: Project, trainer_ref: dict, state: RunState,
                  stop_flag: threading.Event, device: str):
    from transformers import TrainerCallback

    class SmoloraCallback(TrainerCallback):
        def __init__(self):
            self.segment_start = time.monotonic()
            self.window: list[tuple[float, int, int]] = []  # (time, step, tokens)
            self.nan_warned = False
            self.last_loss: float | None = None

        def tokens(self) -> int:
            trainer = trainer_ref["trainer"]  # every process sees about the same number of tokens
            return state.tokens_before + trainer.tokens_seen * trainer.accelerator.num_processes

        def elapsed(self) -> float:
            return state.elapsed_before + time.monotonic() - self.segment_start

        def on_train_begin(self, args, tstate, control, **kwargs):
            self.window = [(time.monotonic(), tstate.global_step, self.tokens())]

        def on_step_end(self, args, tstate, control, **kwargs):
            emit.step = tstate.global_step
            self.step_ended = time.monotonic()  # a checkpoint's save time counts from here
            if stop_flag.is_set():
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, tstate, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            now, step, tokens = time.monotonic(), tstate.global_step, self.tokens()
            self.window.append((now, step, tokens))
            self.window = self.window[-20:]
            t0, s0, k0 = self.window[0]
            rate = (tokens - k0) / (now - t0) if now > t0 and tokens > k0 else None
            step_s = (now - t0) / (step - s0) if step > s0 else None
            eta = step_s * (tstate.max_steps - step) if step_s is not None else None
            loss = self.last_loss = logs.get("loss")
            emit(ev.Step(step=step, max_steps=tstate.max_steps, epoch=logs.get("epoch", tstate.epoch), loss=loss,
                         lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"), tokens=tokens,
                         tokens_per_s=rate, elapsed_s=self.elapsed(), eta_s=eta,
                         memory_mb=memory_in_use_mb(device)))
            for name, value in (("loss", loss), ("grad_norm", logs.get("grad_norm"))):
                if isinstance(value, float) and not math.isfinite(value) and not self.nan_warned:
                    self.nan_warned = True
                    emit(ev.Warning(message=(
                        f"{name} became {value} at step {step}: lower the learning rate "
                        f"(training.learning_rate = {project.training.learning_rate:g}), or check the data "
                        "for broken rows (smolora data check)")))

        def on_evaluate(self, args, tstate, control, metrics=None, **kwargs):
            value = (metrics or {}).get("eval_loss")
            best = value is not None and math.isfinite(value) and (state.best_eval is None or value < state.best_eval)
            if best:
                state.best_eval, state.best_step = value, tstate.global_step
            emit(ev.Eval(step=tstate.global_step, eval_loss=value, best=best))

        def on_save(self, args, tstate, control, **kwargs):
            step = tstate.global_step
            path = folder / "checkpoints" / f"checkpoint-{step}"
            if not path.is_dir() or not tstate.is_world_process_zero:
                return
            import json

            give_normal_modes(path)
            atomic_write_text(path / COMPLETE_MARKER, json.dumps({
                "step": step, "tokens": self.tokens(), "elapsed_s": self.elapsed(),
                "best_eval": state.best_eval, "best_step": state.best_step}))
            save_s = time.monotonic() - getattr(self, "step_ended", time.monotonic())
            emit(ev.Checkpoint(step=step, path=str(path), save_s=round(save_s, 3)))
            rotate_checkpoints(folder, project.training.keep_checkpoints, state.best_step)

    return SmoloraCallback()


def rotate_checkpoints(folder: Path, keep: int, best_step: int | None) -> None:
    import shutil

    complete = [(step, path) for step, path, ok in checkpoints(folder) if ok]
    doomed = complete[:-keep] if keep > 0 else []
    for step, path in doomed:
        if step != best_step:
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ the run

def resolve_resume(project_name: str, resume: str) -> str:
    ids = list_run_ids(project_name)
    if resume != "latest":
        if resume not in ids:
            raise TrainingRefused(f"no run {resume!r} in project {project_name!r} (runs: {', '.join(ids) or 'none'})")
        info = summarize(project_name, resume)
        if reason := info.why_not_resumable(f"start a new run with `smolora train --project {project_name}`"):
            raise TrainingRefused(reason)
        return resume
    for run_id in reversed(ids):
        info = summarize(project_name, run_id)
        if info.resumable_step is not None and info.status != "finished":
            return run_id
    raise TrainingRefused(f"project {project_name!r} has no run with a checkpoint to resume; "
                          f"start one with `smolora train --project {project_name}`")


def prepare_run(project_name: str, run_id: str | None, resume: str | None, max_steps: int | None
                ) -> tuple[str, Project]:
    """Create (or reopen, to resume) the run folder; return its id and frozen settings."""
    from .projects import load_project

    if resume or (run_id and (run_dir(project_name, run_id) / "run.toml").exists()):
        # Resuming, or a worker whose parent already froze the settings (--detach, a launcher's ranks).
        run_id = resolve_resume(project_name, resume) if resume else run_id
        raw = read_run_settings(project_name, run_id)
        project, _problems = project_from_dict(raw, project_name)
    else:
        project = load_project(project_name)
        run_id = run_id or new_run_id(project_name)
    if max_steps:
        project.training.max_steps = max_steps
    folder = run_dir(project_name, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    if rank() == 0:
        atomic_write_text(folder / "run.toml", project.to_toml())
    return run_id, project


def rank() -> int:
    """This process's rank under torchrun or accelerate (0 when alone)."""
    return int(os.environ.get("RANK", "0"))


def training_args(project: Project, folder: Path, device: str, dtype: str, has_eval: bool):
    from trl import SFTConfig

    t = project.training
    # transformers 5.23 renamed gradient_checkpointing (the old name still works, with a FutureWarning).
    renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
    checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": t.gradient_checkpointing}
    return SFTConfig(
        output_dir=str(folder / "checkpoints"),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        eval_strategy="steps" if has_eval and t.eval_steps > 0 else "no",
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        seed=t.seed,
        data_seed=t.seed,
        **checkpointing,
        bf16=dtype == "bfloat16" and device == "cuda",
        fp16=dtype == "float16" and device == "cuda",
        use_cpu=device == "cpu",
        max_length=t.max_length,
        report_to="none",
        logging_nan_inf_filter=False,
        disable_tqdm=True,
        prediction_loss_only=True,
        save_only_model=False,
        dataloader_pin_memory=device == "cuda",
        ddp_backend="gloo" if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=False,
        model_init_kwargs=None,
    )


def lora_config(project: Project):
    from peft import LoraConfig

    lora = project.lora
    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      use_dora=lora.use_dora, use_rslora=lora.use_rslora, bias="none", task_type="CAUSAL_LM")


def run_training(project_name: str, run_id: str | None = None, resume: str | None = None,
                 max_steps: int | None = None) -> int:
    run_id, project = prepare_run(project_name, run_id, resume, max_steps)
    if not project.training.gradient_checkpointing:
        keep_freed_memory()
    folder = run_dir(project_name, run_id)
    leader = rank() == 0
    with training_lock(project_name, run_id) if leader else contextlib.nullcontext():
        emit = Emitter(folder / "events.jsonl" if leader else Path(os.devnull), echo=leader)
        heartbeat = Heartbeat(emit)
        stop_flag = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop_flag.set())
        try:
            return _train(project, run_id, folder, emit, heartbeat, stop_flag, resume is not None)
        finally:
            heartbeat.done.set()
            emit.close()


def _train(project: Project, run_id: str, folder: Path, emit: Emitter, heartbeat: Heartbeat,
           stop_flag: threading.Event, resuming: bool) -> int:
    import json

    checkpoint = None
    state = RunState()
    if resuming:
        checkpoint, skipped = latest_complete_checkpoint(folder)
        for path in skipped:
            emit(ev.Warning(message=f"skipped {path.name}: it was not completely written (the worker was "
                                    "interrupted while saving); resuming from the one before"))
        if checkpoint is not None:
            saved = json.loads((checkpoint / COMPLETE_MARKER).read_text())
            state = RunState(saved.get("tokens", 0), saved.get("elapsed_s", 0.0), saved.get("best_eval"),
                             saved.get("best_step"))
    try:
        from .device import choose_device

        choice = choose_device(project.model.device, project.model.dtype)
        emit(ev.Started(run_id=run_id, project=project.name, pid=os.getpid(), pid_start=process_start_time(),
                        model=project.model.base, device=choice.device, dtype=choice.dtype,
                        resumed_from=int(checkpoint.name.split("-")[1]) if checkpoint else None))
        heartbeat.start()
        emit(ev.Log(message=f"device: {choice.describe()}"))
        emit(ev.Loading(message=f"loading {project.model.base}", progress=0.0))
        from .models import load_model
        from .quiet import quiet_libraries

        quiet_libraries()

        model, tokenizer = load_model(project.model.base, device="cpu", dtype=choice.dtype,
                                      trust_remote_code=project.model.trust_remote_code,
                                      progress=lambda msg: emit(ev.Loading(message=msg)))
        model.config.use_cache = False
        emit(ev.Loading(message="preparing the data", progress=0.5))
        from .data import prepare

        data = prepare(project.data, tokenizer, project.training.max_length, seed=project.data.split_seed)
        emit(ev.Log(message=data.report.summary()))
        if data.report.problems:
            emit(ev.Warning(message=f"{len(data.report.problems)} data problem(s) were skipped; "
                                    f"see `smolora data check --project {project.name}`"))
        from datasets import Dataset
        from peft import get_peft_model
        from transformers import set_seed

        set_seed(project.training.seed)  # the adapter's random init is part of the run: same seed, same run

        def to_dataset(rows):
            return Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})

        train_set = to_dataset(data.train)
        eval_set = to_dataset(data.eval) if data.eval else None
        model = get_peft_model(model, lora_config(project))
        trainable, _total = model.get_nb_trainable_parameters()
        longest = max(len(r.input_ids) for r in data.train)
        estimate = estimate_memory_mb(project, longest, choice.device, choice.dtype)
        available = available_memory_mb(choice.device)
        if estimate is not None:
            emit(ev.MemoryEstimate(estimate_mb=estimate["total"], available_mb=available, detail=estimate))
            if available is not None and estimate["total"] > available:
                raise TrainingRefused(
                    f"training needs about {estimate['total']:,.0f} MB but only {available:,.0f} MB is free: "
                    f"{memory_advice(project)}")
        emit(ev.Loading(message="starting the trainer", progress=0.9))
        trainer_cls = make_trainer_class()
        trainer_ref: dict = {}
        callback = make_callback(emit, folder, project, trainer_ref, state, stop_flag, choice.device)
        trainer = trainer_cls(model=model, args=training_args(project, folder, choice.device, choice.dtype,
                                                              eval_set is not None),
                              train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                              callbacks=[callback])
        trainer_ref["trainer"] = trainer
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints each log as a dict; our Step events say it
        emit(ev.Loading(message="training", progress=1.0))
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        step = trainer.state.global_step
        if stop_flag.is_set() and step < trainer.state.max_steps:
            last, _ = latest_complete_checkpoint(folder)
            emit(ev.Stopped(step=step, checkpoint=str(last) if last else None, reason="stop requested"))
            return 0
        adapter = folder / "adapter"
        if not trainer.is_world_process_zero():
            return 0
        trainer.model.save_pretrained(adapter)
        tokenizer.save_pretrained(adapter)
        give_normal_modes(adapter)
        emit(ev.Finished(step=step, path=str(adapter), loss=callback.last_loss,
                         eval_loss=state.best_eval, tokens=callback.tokens(), elapsed_s=callback.elapsed(),
                         details={"trainable_parameters": trainable}))
        return 0
    except TrainingRefused as exc:
        emit(ev.Error(message=str(exc), hint="change the setting named above and start again"))
        return 2
    except Exception as exc:  # every failure becomes an event that says what to do
        message, hint = explain_failure(exc, project)
        emit(ev.Error(message=message, hint=hint))
        traceback.print_exc()
        return 1


def memory_advice(project: Project) -> str:
    """Which settings to lower when training does not fit, most effective first."""
    t = project.training
    advice = []
    if not t.gradient_checkpointing:
        advice.append("set training.gradient_checkpointing = true")
    if t.batch_size > 1:
        advice.append(f"lower training.batch_size (now {t.batch_size}) and raise training.grad_accum")
    advice.append(f"lower training.max_length (now {t.max_length})")
    if project.lora.r > 8:
        advice.append(f"lower lora.r (now {project.lora.r})")
    return ", or ".join(advice)


def explain_failure(exc: BaseException, project: Project) -> tuple[str, str]:
    from .data import DataError
    from .models import ModelNotFound

    text = str(exc)
    if isinstance(exc, (DataError, ModelNotFound)):
        return text, "fix the data or the model setting and start again"
    lowered = text.lower()
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or any(
            words in lowered for words in ("out of memory", "can't allocate memory", "not enough memory")):
        return (f"out of memory: {text.splitlines()[0] if text else type(exc).__name__}",
                f"{memory_advice(project)}; then resume from the last checkpoint")
    return f"{type(exc).__name__}: {text}", "see worker.log in the run folder for the traceback"


# ------------------------------------------------------------------ starting and stopping workers

def worker_command(project: str, run_id: str | None, resume: str | None, max_steps: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "smolora_engine.cli", "train", "--project", project]
    if run_id:
        cmd += ["--run-id", run_id]
    if resume:
        cmd += ["--resume", resume]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    return cmd


def launcher_command(project: Project, inner: list[str]) -> list[str]:
    """Wrap the worker in the project's multi-process launcher (torchrun or accelerate)."""
    t = project.training
    if t.launcher == "none" or t.num_processes <= 1:
        return inner
    module_args = inner[2:]  # after "python -m"
    if t.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={t.num_processes}", "-m", *module_args]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(t.num_processes),
            "-m", *module_args]


def start_detached(project_name: str, resume: str | None = None, max_steps: int | None = None) -> str:
    """Start the worker in its own session (it outlives the TUI and the SSH link); return the run id."""
    from .projects import load_project

    if holder := running_holder(project_name):
        raise TrainingRefused(f"project {project_name!r} is already training ({holder})")
    if resume:
        run_id = resolve_resume(project_name, resume)
        resume = run_id
    else:
        run_id = new_run_id(project_name)
    project = load_project(project_name)
    folder = run_dir(project_name, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(folder / "run.toml", project.to_toml())
    cmd = launcher_command(project, worker_command(project_name, run_id, resume, max_steps))
    with open(folder / "worker.log", "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return run_id


def stop_run(project_name: str, timeout: float | None = None, kill: bool = False,
             say: Callable[[str], object] = lambda _line: None) -> str:
    """SIGTERM the running worker (checkpoint at the next step boundary); SIGKILL only after the grace.

    The grace (`timeout`, else `RunInfo.stop_grace()`) follows the run's measured step and checkpoint
    times, so a slow step is not cut short. `kill` skips it. The answer names the checkpoint that
    really exists, or says there is none.
    """
    import psutil

    running = [r for r in (summarize(project_name, i) for i in list_run_ids(project_name)) if r.status == "running"]
    if not running:
        raise TrainingRefused(f"project {project_name!r} has no running training")
    info = running[-1]
    grace = 0.0 if kill else info.stop_grace() if timeout is None else timeout
    proc = psutil.Process(info.pid)
    group = [proc, *proc.children(recursive=True)]
    alive = group
    if not kill:
        say(f"asked run {info.run_id} to stop: it saves a checkpoint at the end of the step in progress; "
            f"killed if it has not stopped in {duration(grace)}")
        for p in group:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _gone, alive = psutil.wait_procs(group, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + 10
    while alive and process_alive(info.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)  # gone (or a zombie) before its status is read
    after = summarize(project_name, info.run_id)
    where = (f"it can be resumed from checkpoint-{after.resumable_step} (step {after.resumable_step})"
             if after.resumable_step is not None else
             "it has no complete checkpoint, so there is nothing to resume; start a new run")
    if alive:
        how = "was killed" if kill else f"did not stop within {duration(grace)} and was killed"
        return f"run {info.run_id} {how} at step {after.step}; {where}"
    return f"run {info.run_id} stopped at step {after.step}; {where}"
