"""`smolora init, projects, show, config, device, model, estimate`: projects and what they run on."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from .. import paths
from ..estimate import FactsError, estimate_for, read_facts, targets_problem
from ..project_load import blocking, warnings_of
from ..project_fields import field_doc, field_docs, parse_assignment, set_value
from .common import command, fail, print_json


@command("init")
def cmd_init(args: argparse.Namespace) -> int:
    from ..projects import create_project

    project = create_project(args.name, model=args.model, data=args.data, description=args.description or "")
    print(f"created project {project.name!r} in {paths.project_file(project.name)}")
    if not project.data.path:
        print(f"next: smolora config {project.name} data.path=/path/to/your/data")
    return 0


@command("projects")
def cmd_projects(args: argparse.Namespace) -> int:
    from ..projects import list_projects

    entries = list_projects()
    if args.json:
        print_json([
            {"name": e.name, "path": str(e.path), "usable": e.usable,
             "model": e.project.model.base if e.project else None,
             "data": e.project.data.path if e.project else None,
             "error": e.error, "problems": [p.message for p in e.problems]}
            for e in entries
        ])
        return 0
    if not entries:
        print(f"no projects yet in {paths.projects_dir()}; create one with `smolora init NAME`")
        return 0
    for e in entries:
        if e.error:
            print(f"{e.name:<24} UNREADABLE  {e.error}")
        else:
            assert e.project is not None
            flag = "" if e.usable else "  (has problems: smolora show " + e.name + ")"
            print(f"{e.name:<24} {e.project.model.base:<28} {e.project.data.path or '(no data yet)'}{flag}")
    return 0


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    from ..projects import read_project

    entry = read_project(args.name)
    if entry.error:
        return fail(entry.error)
    assert entry.project is not None
    if args.json:
        print_json({"path": str(entry.path), "project": entry.project.to_dict(),
                    "problems": [{"field": p.field, "message": p.message} for p in entry.problems],
                    "warnings": [w for w in [targets_note(entry.project)] if w]})
        return 0
    print(f"# {entry.path}")
    print(entry.project.to_toml(), end="")
    for p in entry.problems:
        print(f"problem: {p.message}", file=sys.stderr)
    if targets := targets_note(entry.project):
        print(f"warning: {targets}", file=sys.stderr)
    return 2 if blocking(entry.problems) else 0


def targets_note(project) -> str | None:
    """Named LoRA targets that match no layer of the project's model, when its files are at hand
    (no conversion, no download: a model not ready yet is checked when training starts)."""
    from ..models import ModelNotFound, resolve_model

    try:
        source = resolve_model(project.model.base)
        facts = read_facts(source.path) if source.ready else None
    except (ModelNotFound, FactsError, OSError):
        return None
    return targets_problem(facts.linear, list(project.lora.target_modules), project.model.base) if facts else None


@command("config")
def cmd_config(args: argparse.Namespace) -> int:
    from ..projects import load_project, save_project

    project = load_project(args.name)
    problems = []
    for assignment in args.assignments:
        try:
            key, value = parse_assignment(assignment)
        except ValueError as exc:
            return fail(str(exc))
        project, problems = set_value(project, key, value)
        if bad := [p for p in problems if (p.field == key or p.field.startswith(key + ".")) and not p.warning]:
            for p in bad:
                print(f"smolora: {f'unknown key {p.field}' if p.unknown_key else p.message}", file=sys.stderr)
            if doc := field_doc(key):
                print(f"  {key}: {doc}", file=sys.stderr)
            elif any(p.unknown_key for p in bad):
                section = key.split(".")[0]
                known = [k for k, *_ in field_docs() if k.startswith(section + ".")]
                print("  known keys: " + ", ".join(known or [k for k, *_ in field_docs()]), file=sys.stderr)
            print("nothing was saved", file=sys.stderr)
            return 2
    if bad := blocking(problems):
        for p in bad:
            print(f"smolora: {p.message}", file=sys.stderr)
        print("nothing was saved", file=sys.stderr)
        return 2
    path = save_project(project)
    print(f"saved {path}")
    for p in warnings_of(problems):
        print(f"smolora: warning: {p.message}", file=sys.stderr)
    return 0


@command("device")
def cmd_device(args: argparse.Namespace) -> int:
    from .. import precision
    from ..device import choose_device, device_memory, free_memory

    plain = choose_device(args.device, "auto" if args.dtype == "auto" else args.dtype)
    if args.remeasure:
        precision.forget(plain.device)
    if args.dtype == "auto" and precision.cached_probe(plain.device) is None:
        print("measuring training speed in float32 and bfloat16 on this machine (once, a few seconds) …",
              file=sys.stderr, flush=True)
    choice = choose_device(args.device, args.dtype, for_training=True)
    known = precision.cached_probe(choice.device) if args.dtype == "auto" else None
    flags = precision.cpu_bf16_flags() if choice.device == "cpu" else []
    if args.json:
        print_json({"device": choice.device, "dtype": choice.dtype, "reason": choice.reason,
                    "dtype_reason": choice.dtype_reason, "memory_total": device_memory(choice.device),
                    "memory_available": free_memory(choice.device),
                    "machine": precision.machine_name(choice.device), "cpu_bf16_flags": flags,
                    "probe": asdict(known) if known else None})
        return 0
    print(f"device: {choice.device} ({precision.machine_name(choice.device)}): {choice.reason}")
    if choice.device == "cpu":
        print(f"cpu bf16 features: {', '.join(flags) or 'none'}")
    print(f"training precision: {choice.dtype}: {choice.dtype_reason}")
    if known:
        print(f"probe: {known.float32_step_s * 1000:.0f} ms per step in float32, "
              f"{known.candidate_step_s * 1000:.0f} ms in {known.candidate}; loss {known.float32_loss:.4f} and "
              + (f"{known.candidate_loss:.4f}" if known.candidate_loss is not None
                 else f"not measured ({known.candidate} was given up on as far slower)")
              + f" (kept in {precision.probe_file()}; --remeasure runs it again)")
    print(f"inference and merge precision: {plain.dtype}")
    return 0


@command("model")
def cmd_model(args: argparse.Namespace) -> int:
    """Resolve a model and prepare it (convert the embedded GGUF once)."""
    import time

    from ..models import ensure_model, resolve_model

    source = resolve_model(args.spec)
    started = time.monotonic()
    folder = ensure_model(args.spec, progress=lambda msg: print(msg, file=sys.stderr))
    info = {"spec": args.spec, "kind": source.kind, "path": str(folder),
            "prepared_s": round(time.monotonic() - started, 2)}
    try:
        facts = read_facts(folder)
    except FactsError as exc:
        facts, info["facts_error"] = None, str(exc)
    info["facts"] = facts.to_dict() if facts else None
    if args.json:
        print_json(info)
        return 0
    print(f"{args.spec}: {source.kind} model at {folder}")
    if facts:
        print(f"{facts.architecture}: {facts.params:,} parameters, {facts.layers} layers, hidden {facts.hidden}, "
              f"vocabulary {facts.vocab:,}")
        print("linear layers (lora.target_modules): "
              + ", ".join(facts.describe_layer(name) for name in facts.linear))
    return 0


@command("estimate")
def cmd_estimate(args: argparse.Namespace) -> int:
    """The memory a project's training needs, from its model's config and safetensors headers: at max_length,
    and with --data for the project's data as well (its longest sample)."""
    from ..device import choose_device, free_memory
    from ..models import ensure_model
    from ..projects import load_project

    project = load_project(args.name)
    facts = read_facts(ensure_model(project.model.base, progress=lambda msg: print(msg, file=sys.stderr)))
    device = choose_device(project.model.device, project.model.dtype).device
    # checkpointing `auto` resolved as a worker started now would resolve it: against the memory free now
    free_mb = free_memory(device) / 2**20
    max_length = project.training.max_length
    results = [(f"for samples of max_length ({max_length} tokens)", estimate_for(facts, project, device,
                                                                                   free_mb=free_mb))]
    longest = None
    if args.data:
        from ..data.doctor import DataError

        try:
            longest = _longest_sample(project)
        except DataError as exc:
            return fail(f"the project's data cannot be read for the estimate: {exc}")
        cut = f", cut at max_length ({max_length})" if longest > max_length else ""
        results.append((f"for this data (its longest sample: {longest} tokens{cut})",
                        estimate_for(facts, project, device, longest=longest, free_mb=free_mb)))
    if args.json:
        figures = _figures(results[0][1])
        print_json({**figures, "max_length": max_length,
                    "data": {**_figures(results[1][1]), "longest": longest} if args.data else None})
        return 0
    for number, (what, result) in enumerate(results):
        figures = _figures(result)
        packed = result.packing.packed
        print(("\n" if number else "") + result.describe())
        print(f"{what}, {figures['samples_per_pass']} per {'packed row' if packed else 'pass'}; gradient "
              f"checkpointing {figures['checkpointing']} ({figures['checkpointing_reason']})")
    return 0


def _figures(result) -> dict:
    from ..training.recipe import checkpointing_label

    return {"total": result.total, "parts": dict(result.parts()), "device": result.device, "dtype": result.dtype,
            "adapter_params": result.adapter_params,
            "checkpointing": checkpointing_label(result.checkpointing, result.checkpoint_every),
            "checkpointing_reason": result.checkpointing_reason, "samples_per_pass": result.packing.micro_batch}


def _longest_sample(project) -> int:
    """The longest sample of the project's data in tokens, as the doctor reads it (DataError where none is usable)."""
    from ..data.doctor import check_data
    from ..models import load_tokenizer

    report = check_data(project.data, load_tokenizer(project.model.base, project.model.trust_remote_code),
                        project.training.max_length)
    return report.tokens["max"]
