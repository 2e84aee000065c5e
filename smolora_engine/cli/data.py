"""`smolora data check | preview | sample`: the data doctor, previews and rendered samples."""

from __future__ import annotations

import argparse
import json
import sys

from ..project import ProjectError
from .common import command, fail, print_json


def _data_settings(args: argparse.Namespace):
    """The project's data settings, or defaults pointed at PATH."""
    from ..project import DataSettings, ModelSettings, TrainingSettings
    from ..projects import load_project

    if args.project:
        project = load_project(args.project)
        if args.path:
            project.data.path = args.path
        return project.data, project.training, project.model
    if not args.path:
        raise ProjectError("give a PATH or --project NAME")
    return DataSettings(path=args.path, format=args.format), TrainingSettings(), ModelSettings()


@command("data")
def cmd_data(args: argparse.Namespace) -> int:
    from ..data.doctor import DataError, check_data
    from ..data.preview import preview

    settings, training, model = _data_settings(args)
    try:
        if args.action == "preview":
            result = preview(settings.path, args.rows, settings.format, settings.text_split, settings.columns)
            if args.json:
                print_json({"source": result.source, "format": result.format, "shape": result.shape,
                            "columns": result.columns, "total_rows": result.total_rows, "rows": result.rows,
                            "where": result.where, "problems": [p.to_dict() for p in result.problems]})
                return 0
            total = "unknown" if result.total_rows is None else result.total_rows
            print(f"{result.source}: {result.format}, shape {result.shape or 'unknown'}, rows {total}")
            for where, row in zip(result.where, result.rows):
                print(f"{where}: {json.dumps(row, ensure_ascii=False)[:200]}")
            for problem in result.problems:
                print(f"problem: {problem}")
            return 0
        if args.action == "sample":
            return _show_sample(settings, model, training, args)
        tokenizer = None
        if not args.no_tokens:
            from ..models import load_tokenizer

            tokenizer = load_tokenizer(model.base, model.trust_remote_code)
        report = check_data(settings, tokenizer, training.max_length)
    except DataError as exc:
        if args.json:  # the report so far too: the app lists the rows that made the data unusable
            print_json({"error": str(exc), **(exc.report.to_dict() if exc.report else {})})
        return fail(str(exc))
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.summary())
    for problem in report.problems[: args.max_problems]:
        print(f"  {problem}")
    if len(report.problems) > args.max_problems:
        print(f"  ... {len(report.problems) - args.max_problems} more (--json lists them all)")
    return 0


def _show_sample(settings, model, training, args: argparse.Namespace) -> int:
    """One sample rendered with the chat template: trained spans marked, masked spans plain."""
    from ..data.chat_format import ChatFormat
    from ..data.doctor import samples_for_display
    from ..data.render import MASKS, NOT_RENDERED, RenderError, mask_note, render_sample
    from ..models import load_tokenizer

    samples = samples_for_display(settings, args.index + 1)
    if len(samples) <= args.index:
        return fail(f"the data has only {len(samples)} usable sample(s)")
    sample = samples[args.index]
    try:
        rendered = render_sample(sample, load_tokenizer(model.base, model.trust_remote_code), training.max_length,
                                 ChatFormat.of(settings))
    except RenderError as exc:  # a row the doctor reports as a problem too: say which and why
        return fail(f"{sample.where}: {exc}", NOT_RENDERED)
    if args.json:
        print_json({"where": sample.where, "segments": [{"text": t, "trained": tr} for t, tr in rendered.segments],
                    "tokens": len(rendered.input_ids), "trained_tokens": rendered.trained_tokens,
                    "mask": rendered.mask, "mask_missed": rendered.mask_missed, "mask_extra": rendered.mask_extra})
        return 0
    color = sys.stdout.isatty()
    print(f"# {sample.where}: {len(rendered.input_ids)} tokens, {rendered.trained_tokens} trained "
          + ("(trained text in green)" if color else "(trained text between <<< and >>>)"))
    if rendered.mask:
        print(f"# loss placed by {MASKS[rendered.mask]}" + mask_note(rendered.mask_extra, rendered.mask_missed))
    for text, trained in rendered.segments:
        if trained:
            print(f"\x1b[32m{text}\x1b[0m" if color else f"<<<{text}>>>", end="")
        else:
            print(f"\x1b[2m{text}\x1b[0m" if color else text, end="")
    print()
    return 0

