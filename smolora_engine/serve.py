"""Inference: one process loads the model once and answers JSON requests.

`smolora serve --project NAME` reads one JSON object per line on stdin and writes
events (see events.py) on stdout:

    {"id": "1", "messages": [{"role": "user", "content": "Hi"}], "model": "adapter",
     "max_new_tokens": 200, "temperature": 0.7, "top_p": 0.9, "top_k": 50,
     "repetition_penalty": 1.0, "seed": 0}
    {"id": "2", "prompt": "Once upon a time", "model": "base"}
    {"cancel": "1"}                      stops request 1 within one token

    -> {"kind": "ready", "models": ["base", "adapter"]}
    -> {"kind": "token", "id": "1", "text": "Hel"} ... {"kind": "done", "id": "1", "tokens": 12, ...}
    -> {"kind": "error", "id": "3", "message": "...", "hint": "..."}   (the worker stays up)

`base` and `adapter` share one copy of the base weights: the adapter is disabled
for `base`. `merged` loads the run's merged folder (written by `smolora merge`)
on its first use.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from . import events as ev

MODELS = ("base", "adapter", "merged")
DEFAULTS = {"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.0,
            "seed": None}
Emit = Callable[[ev.Event], object]


class BadRequest(Exception):
    pass


@dataclass
class Request:
    id: str
    model: str
    messages: list[dict] | None
    prompt: str | None
    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int | None


def _number(data: dict, key: str, kind: type, low: float, high: float | None = None):
    value = data.get(key, DEFAULTS[key])
    if value is None and DEFAULTS[key] is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise BadRequest(f"{key} must be a{'n integer' if kind is int else ' number'}, not {value!r}")
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{key} must be between {low} and {high if high is not None else 'any size'}, not {value}")
    return kind(value)


def parse_request(data: object, default_model: str) -> Request:
    """A request dict checked field by field; BadRequest names the field."""
    if not isinstance(data, dict):
        raise BadRequest("a request is a JSON object")
    rid = str(data.get("id", ""))
    messages, prompt = data.get("messages"), data.get("prompt")
    if (messages is None) == (prompt is None):
        raise BadRequest("give exactly one of messages (a chat) or prompt (plain text)")
    if messages is not None:
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise BadRequest('messages must be a non-empty list of {"role": ..., "content": ...} objects')
    elif not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt must be a non-empty string")
    model = data.get("model", default_model)
    if model not in MODELS:
        raise BadRequest(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    return Request(rid, model, messages, prompt,
                   _number(data, "max_new_tokens", int, 1, 32768), _number(data, "temperature", float, 0, 10),
                   _number(data, "top_p", float, 0, 1), _number(data, "top_k", int, 0),
                   _number(data, "repetition_penalty", float, 0.01, 10), _number(data, "seed", int, 0))


class _Streamer:
    """transformers' streamer protocol: decodes as tokens arrive and emits only whole characters."""

    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False
        self.first_token_at: float | None = None

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            return
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent):])
        self.sent = text


class Engine:
    """The loaded models of one project, and generation with streaming and cancel."""

    def __init__(self, project: str, run_id: str | None = None, checkpoint: int | None = None,
                 progress: Callable[[str], None] | None = None):
        from .data.chat_format import ChatFormat
        from .device import choose_device
        from .models import load_model
        from .projects import load_project
        from .runs import NoAdapter, read_run_settings, resolve_adapter, run_base_model

        say = progress or (lambda _message: None)
        settings = load_project(project)
        base, trust = settings.model.base, settings.model.trust_remote_code
        self.adapter_path: Path | None = None
        self.run_id: str | None = None
        # How conversations are rendered: as the run trained (its frozen settings), else as the project says.
        self.format = ChatFormat.of(settings.data)
        try:
            self.run_id, self.adapter_path = resolve_adapter(project, run_id, checkpoint)
            base, trust = run_base_model(project, self.run_id)
            self.format = ChatFormat.of(read_run_settings(project, self.run_id).get("data", {}))
        except NoAdapter:
            if run_id or checkpoint is not None:
                raise
        self.choice = choose_device(settings.model.device, settings.model.dtype)
        self.device = self.choice.device
        say(f"loading {base} on {self.choice.describe()}")
        model, self.tokenizer = load_model(base, device=self.device, dtype=self.choice.dtype,
                                           trust_remote_code=trust, progress=say)
        model.eval()
        self.model = model
        if self.adapter_path is not None:
            from peft import PeftModel

            say(f"loading the adapter {self.adapter_path}")
            self.model = PeftModel.from_pretrained(model, str(self.adapter_path)).eval()
        self.merged_path: Path | None = None
        if self.run_id is not None:
            from .merge import merged_dir
            from .runs import run_dir

            candidate = merged_dir(run_dir(project, self.run_id), checkpoint)
            if (candidate / "config.json").is_file():
                self.merged_path = candidate
        self._merged = None
        self.trust = trust

    @property
    def models(self) -> list[str]:
        return ["base"] + (["adapter"] if self.adapter_path else []) + (["merged"] if self.merged_path else [])

    @property
    def default_model(self) -> str:
        return "adapter" if self.adapter_path else "base"

    def _model_for(self, name: str):
        if name not in self.models:
            hint = {"adapter": "this project has no finished run yet", "merged": "run `smolora merge` first"}
            raise BadRequest(f"model {name!r} is not available here ({hint.get(name, '')}); "
                             f"available: {', '.join(self.models)}")
        if name == "merged":
            if self._merged is None:
                from transformers import AutoModelForCausalLM

                from .device import torch_dtype

                self._merged = AutoModelForCausalLM.from_pretrained(
                    self.merged_path, dtype=torch_dtype(self.choice.dtype), local_files_only=True,
                    trust_remote_code=self.trust).to(self.device).eval()
            return self._merged
        return self.model

    def encode(self, request: Request):
        if request.messages is not None:
            if not getattr(self.tokenizer, "chat_template", None):
                raise BadRequest("this model has no chat template: send a plain prompt instead of messages")
            text = self.format.prompt(self.tokenizer, request.messages)
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
        return self.tokenizer(request.prompt, return_tensors="pt").to(self.device)

    def generation_kwargs(self, request: Request) -> dict:
        from .export.families import stop_token_ids

        kwargs = {"max_new_tokens": request.max_new_tokens, "repetition_penalty": request.repetition_penalty,
                  "pad_token_id": self.tokenizer.pad_token_id,
                  "eos_token_id": stop_token_ids(self.model, self.tokenizer) or None}
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=request.top_p,
                          top_k=request.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(self, request: Request, emit: Emit, cancel: threading.Event | None = None) -> ev.Done:
        import contextlib

        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancel = cancel or threading.Event()

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        model = self._model_for(request.model)
        started = time.perf_counter()
        inputs = self.encode(request)
        streamer = _Streamer(self.tokenizer, lambda text: emit(ev.Token(id=request.id, text=text)))
        if request.seed is not None:
            torch.manual_seed(request.seed)
        off = model.disable_adapter() if request.model == "base" and self.adapter_path else contextlib.nullcontext()
        with torch.inference_mode(), off:
            output = model.generate(**inputs, **self.generation_kwargs(request), streamer=streamer,
                                    stopping_criteria=StoppingCriteriaList([Cancelled()]))
        ended = time.perf_counter()
        new = output[0, inputs["input_ids"].shape[1]:]
        count = int(new.numel())
        first = streamer.first_token_at or ended
        rate = (count - 1) / (ended - first) if count > 1 and ended > first else None
        return ev.Done(id=request.id, text=streamer.sent, tokens=count, tokens_per_s=rate,
                       ttft_s=first - started, cancelled=cancel.is_set())


def serve(engine: Engine, stdin: IO[str], stdout: IO[str]) -> int:
    """The request loop: a reader thread takes lines (and cancels at once); this thread generates."""
    lock = threading.Lock()

    def emit(event: ev.Event) -> None:
        with lock:
            stdout.write(event.to_json() + "\n")
            stdout.flush()

    pending: queue.Queue = queue.Queue()
    current: dict[str, threading.Event] = {}

    def read() -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                emit(ev.Error(message=f"request is not JSON: {exc}", hint="send one JSON object per line"))
                continue
            if isinstance(data, dict) and ("cancel" in data or data.get("type") == "cancel"):
                target = str(data.get("cancel") if data.get("cancel") not in (None, True) else data.get("id", ""))
                flag = current.get(target)
                if flag is not None:
                    flag.set()
                continue
            if isinstance(data, dict) and data.get("id") is not None:
                current.setdefault(str(data["id"]), threading.Event())
            pending.put(data)
        pending.put(None)

    emit(ev.Ready(models=engine.models, system=engine.format.system_in_effect(engine.tokenizer),
                  system_from="run " + engine.run_id if engine.run_id else "the project's settings"))
    threading.Thread(target=read, name="smolora-serve-stdin", daemon=True).start()
    while (data := pending.get()) is not None:
        rid = str(data.get("id", "")) if isinstance(data, dict) else ""
        try:
            request = parse_request(data, engine.default_model)
            emit(engine.generate(request, emit, current.get(rid)))
        except BadRequest as exc:
            emit(ev.Error(id=rid, message=str(exc), hint="fix the request and send it again"))
        except Exception as exc:  # a failed generation must not take the worker down
            emit(ev.Error(id=rid, message=f"{type(exc).__name__}: {exc}", hint="see the worker's stderr"))
        finally:
            current.pop(rid, None)
    return 0


def serve_stdio(project: str, run_id: str | None = None, checkpoint: int | None = None) -> int:
    from .quiet import quiet_libraries

    out = sys.stdout
    sys.stdout = sys.stderr  # libraries that print must not corrupt the event stream
    quiet_libraries()  # the worker's stderr is for what went wrong (the app shows its last line)
    try:
        engine = Engine(project, run_id, checkpoint,
                        progress=lambda m: out.write(ev.Loading(message=m).to_json() + "\n") or out.flush())
        return serve(engine, sys.stdin, out)
    finally:
        sys.stdout = out
