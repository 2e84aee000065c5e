"""The training worker: `smolora train --project NAME` runs this in its own process.

LoRA fine-tuning with TRL's SFTTrainer and PEFT. Everything the outside world
sees goes through the run folder (see runs.py): the frozen settings, the events
(from a TrainerCallback, never from scraped logs), checkpoints and the adapter.
SIGTERM asks for a checkpoint at the next step boundary and a `stopped` event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from .. import events as ev
from ..fsutil import atomic_write_text, give_normal_modes
from ..project import Project
from ..project_load import project_from_dict
from ..runs import (
    COMPLETE_MARKER, latest_complete_checkpoint, list_run_ids, new_run_id, process_start_time, read_run_settings,
    run_dir, summarize, training_lock,
)
from .apply_recipe import prepare_model, prepare_trainer
from .callback import RunState, make_callback
from .emitter import Emitter, Heartbeat
from .errors import TrainingRefused
from .memory import estimate_detail, memory_advice
from .recipe import plan_run
from .samples import BestTracker, EvalSampler, choose_metric
from .trainer import lora_config, make_trainer_class, training_args


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
    from ..projects import load_project

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


def world_size() -> int:
    """How many processes train together under torchrun or accelerate (1 when alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def leave_process_group() -> None:
    """Leave the process group training joined under torchrun or accelerate, before the process exits."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group to leave
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_quietly_if_follower(code: int) -> None:
    """A rank other than 0 ends here, skipping the interpreter's teardown: it has written nothing of its
    own (rank 0 writes the events, the adapter and the trackers' logs), and the teardown can kill it.

    Its last collective (an eval's all-gather) returns before gloo's worker thread has dropped the
    work, whose tensors the thread then releases under the GIL; a rank that exits at once is by then
    tearing the interpreter down, the thread cannot take the GIL, and the C++ runtime aborts the rank
    ("terminate called without an active exception", SIGABRT), which torchrun reports as a failed run.
    Seen in 1 of 6 to 1 of 13 two-process runs here; the core showed exactly that
    (ProcessGroupGloo::runLoop, ~AsyncAllgatherWork, take_gil during Py_FinalizeEx). Leaving the group
    does not stop that thread while the trainer still holds the group."""
    if rank() != 0 and world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_training(project_name: str, run_id: str | None = None, resume: str | None = None,
                 max_steps: int | None = None) -> int:
    run_id, project = prepare_run(project_name, run_id, resume, max_steps)
    folder = run_dir(project_name, run_id)
    leader = rank() == 0
    with training_lock(project_name, run_id) if leader else contextlib.nullcontext():
        emit = Emitter(folder / "events.jsonl" if leader else Path(os.devnull), echo=leader)
        heartbeat = Heartbeat(emit)
        stop_flag = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop_flag.set())
        try:
            code = _train(project, run_id, folder, emit, heartbeat, stop_flag, resume is not None)
        finally:
            heartbeat.done.set()
            emit.close()
            leave_process_group()
    exit_quietly_if_follower(code)
    if leader and project.notify.command:  # after the lock: the project can train again meanwhile
        from .notify import outcome_env, run_notify

        after = Emitter(folder / "events.jsonl", echo=True)
        try:
            run_notify(project.notify.command, outcome_env(project_name, run_id, folder, emit.final),
                       project.notify.timeout_s, after)
        finally:
            after.close()
    return code


def _train(project: Project, run_id: str, folder: Path, emit: Emitter, heartbeat: Heartbeat,
           stop_flag: threading.Event, resuming: bool) -> int:
    import json

    checkpoint = None
    saved: dict = {}
    state = RunState()
    if resuming:
        checkpoint, skipped = latest_complete_checkpoint(folder)
        for path in skipped:
            emit(ev.Warning(message=f"skipped {path.name}: it was not completely written (the worker was "
                                    "interrupted while saving); resuming from the one before"))
        if checkpoint is not None:
            saved = json.loads((checkpoint / COMPLETE_MARKER).read_text())
            state = RunState.from_marker(saved)
    try:
        from ..device import choose_device
        from ..precision import cached_probe

        if project.model.dtype == "auto" and cached_probe(choose_device(project.model.device).device) is None:
            print("measuring training speed in float32 and bfloat16 on this machine (once per machine, about "
                  "10 s)", file=sys.stderr, flush=True)  # before `started`, which says the precision chosen
        choice = choose_device(project.model.device, project.model.dtype, for_training=True)
        emit(ev.Started(run_id=run_id, project=project.name, pid=os.getpid(), pid_start=process_start_time(),
                        model=project.model.base, device=choice.device, dtype=choice.dtype,
                        resumed_from=int(checkpoint.name.split("-")[1]) if checkpoint else None,
                        dtype_reason=choice.dtype_reason))
        heartbeat.start()
        emit(ev.Log(message=f"device: {choice.device}, {choice.reason}"))
        if rank() == 0 and project.training.report_to != "none":
            from .tracking import open_tracker

            emit.add_tracker(open_tracker(project, folder, run_id, resuming))
            emit(ev.Log(message=f"also logging to {project.training.report_to} in "
                                f"{folder / project.training.report_to}"))
        emit(ev.Loading(message=f"loading {project.model.base}", progress=0.0))
        from ..models import load_model
        from ..quiet import quiet_libraries

        quiet_libraries()

        model, tokenizer = load_model(project.model.base, device="cpu", dtype=choice.dtype,
                                      trust_remote_code=project.model.trust_remote_code,
                                      progress=lambda msg: emit(ev.Loading(message=msg)),
                                      attention=varlen_attention(project, choice.device))
        model.config.use_cache = False
        emit(ev.Loading(message="preparing the data", progress=0.5))
        from ..data import prepare

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
        check_targets(model, project, emit)
        model = get_peft_model(model, lora_config(project))
        trainable, _total = model.get_nb_trainable_parameters()
        longest = max(len(r.input_ids) for r in data.train)
        recipe, estimate, available = plan_run(project, choice, longest, model.config, data.report.shared_prefix)
        for line in recipe.lines():
            emit(ev.Log(message=line))
        for line in prepare_model(model, recipe):
            emit(ev.Log(message=line))
        if estimate is not None:
            detail = estimate_detail(estimate)
            emit(ev.MemoryEstimate(estimate_mb=detail["total"], available_mb=available, detail=detail))
            if available is not None and detail["total"] > available:
                raise TrainingRefused(
                    f"training needs about {detail['total']:,.0f} MB but only {available:,.0f} MB is free: "
                    f"{memory_advice(project, recipe)}")
        emit(ev.Loading(message="starting the trainer", progress=0.9))
        sampler = EvalSampler.for_run(project, tokenizer, data.eval, emit) if rank() == 0 else None
        metric = choose_metric(project, sampler, eval_set is not None, emit)
        if metric == "pass_rate" and world_size() > 1:
            emit(ev.Warning(message="with several processes the pass rate is only known to the first: the best "
                                    "checkpoint and early stopping follow eval_loss"))
            metric = "eval_loss" if eval_set is not None else None
        if metric is not None:
            state.restore_tracker(BestTracker(metric, project.training.early_stopping_patience),
                                  saved.get("tracker"))
        trainer_cls = make_trainer_class()
        trainer_ref: dict = {}
        callback = make_callback(emit, folder, project, trainer_ref, state, stop_flag, choice.device, sampler)
        trainer = trainer_cls(model=model, args=training_args(project, folder, choice.device, recipe,
                                                              eval_set is not None),
                              train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                              callbacks=[callback])
        trainer_ref["trainer"] = trainer
        prepare_trainer(trainer, recipe)
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints each log as a dict; our Step events say it
        emit(ev.Loading(message="training", progress=1.0))
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        step = trainer.state.global_step
        if stop_flag.is_set() and step < trainer.state.max_steps:
            last, _ = latest_complete_checkpoint(folder)
            emit(ev.Stopped(step=step, checkpoint=str(last) if last else None, reason="stop requested"))
            return 0
        if eval_set is not None and project.training.eval_steps == 0:
            trainer.evaluate()  # eval_steps = 0: one eval, at the end (its event comes from the callback)
        adapter = folder / "adapter"
        if not trainer.is_world_process_zero():
            return 0
        adapter_step = step
        if project.training.keep_best and state.best_step is not None and state.best_step != step:
            if load_checkpoint_adapter(trainer.model, folder, state.best_step):
                adapter_step = state.best_step
                emit(ev.Log(message=f"the adapter is the best checkpoint's (step {adapter_step}, by "
                                    f"{state.tracker.metric if state.tracker else 'eval_loss'}), not the last "
                                    f"step's (training.keep_best)"))
            else:
                emit(ev.Warning(message=f"the best checkpoint (step {state.best_step}) is gone: the adapter is "
                                        f"the last step's ({step})"))
        trainer.model.save_pretrained(adapter)
        tokenizer.save_pretrained(adapter)
        give_normal_modes(adapter)
        elapsed, samples_s = callback.elapsed(), callback.samples_s()
        details = {"trainable_parameters": trainable, "best_step": state.best_step,
                   "metric": state.tracker.metric if state.tracker else None}
        if sampler is not None:
            details.update(samples_s=round(samples_s, 2), samples_share=samples_s / elapsed if elapsed else None)
            if elapsed:
                emit(ev.Log(message=f"answering the eval prompts took {samples_s:.1f} s, "
                                    f"{samples_s / elapsed:.1%} of the run"))
        emit(ev.Finished(step=step, path=str(adapter), loss=callback.last_loss,
                         eval_loss=state.best_eval, tokens=callback.tokens(), elapsed_s=elapsed,
                         details=details, adapter_step=adapter_step, pass_rate=state.pass_rate,
                         best_pass_rate=state.best_pass_rate, reason=state.stop_reason))
        return 0
    except TrainingRefused as exc:
        emit(ev.Error(message=str(exc), hint="change the setting named above and start again"))
        return 2
    except Exception as exc:  # every failure becomes an event that says what to do
        message, hint = explain_failure(exc, project)
        emit(ev.Error(message=message, hint=hint))
        traceback.print_exc()
        return 1


def varlen_attention(project: Project, device: str) -> str | None:
    """flash-attention's varlen kernels for packed rows on CUDA, where the package is installed."""
    import importlib.util

    if device == "cuda" and project.training.packing != "off" and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return None


def check_targets(model, project: Project, emit: Emitter) -> None:
    """Named targets that match no linear layer: a warning (PEFT adapts the rest silently), or a refusal
    when none matches (fused layers such as Phi's qkv_proj under a list written for Llama)."""
    import torch

    from ..estimate import targets_problem, unmatched_targets

    head = model.get_output_embeddings()
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and module is not head and name}
    targets = list(project.lora.target_modules)
    problem = targets_problem(linear, targets, project.model.base)
    if problem is None:
        return
    if len(unmatched_targets(linear, targets)) == len(targets):
        raise TrainingRefused(problem)
    emit(ev.Warning(message=problem))


def load_checkpoint_adapter(model, folder: Path, step: int) -> bool:
    """Put the adapter weights of checkpoint-STEP into the model; False when that checkpoint is gone."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / "checkpoints" / f"checkpoint-{step}" / "adapter_model.safetensors"
    if not path.is_file() or not (path.parent / COMPLETE_MARKER).is_file():
        return False
    set_peft_model_state_dict(model, load_file(str(path)))
    return True


def explain_failure(exc: BaseException, project: Project) -> tuple[str, str]:
    from ..data import DataError
    from ..models import ModelNotFound

    text = str(exc)
    if isinstance(exc, (DataError, ModelNotFound)):
        return text, "fix the data or the model setting and start again"
    lowered = text.lower()
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or any(
            words in lowered for words in ("out of memory", "can't allocate memory", "not enough memory")):
        return (f"out of memory: {text.splitlines()[0] if text else type(exc).__name__}",
                f"{memory_advice(project)}; then resume from the last checkpoint")
    return f"{type(exc).__name__}: {text}", "see worker.log in the run folder for the traceback"
