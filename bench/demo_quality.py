"""Does the demo visibly teach something? The fraction of held-out prompts showing the behaviour.

In a fresh home: the demo project with its default settings is trained (timed,
as `smolora train` runs it), then the base model and the tuned one answer the 25
held-out prompts (greedy, not in the training data). An answer shows the behaviour
when it ends with the signature line. Targets: base at most 10 %, tuned at least
90 %, training at most 5 minutes on this machine.

Usage: python bench/demo_quality.py [--max-steps N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--models-cache", type=Path, help="reuse a converted-model cache folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["SMOLORA_HOME"] = home
        if args.models_cache:
            (Path(home) / "cache").mkdir()
            (Path(home) / "cache" / "models").symlink_to(args.models_cache.resolve(), target_is_directory=True)
        from smolora_engine.demo import score, setup_demo
        from smolora_engine.demo_walk import duration, train_with_progress
        from smolora_engine.quiet import quiet_libraries
        from smolora_engine.models import ensure_model

        quiet_libraries()
        project = setup_demo()
        ensure_model(project.model.base)  # converting the embedded model once is not training time
        code, run_id, seconds = train_with_progress(project.name, args.max_steps)
        if code:
            raise SystemExit(f"training failed (exit {code})")
        result = score(project.name)
        n = len(result["prompts"])
        base, tuned = result["base_rate"], result["tuned_rate"]
        print(f"demo quality: {n} held-out prompts; base {base:.0%} ({round(base * n)}/{n}), "
              f"tuned {tuned:.0%} ({round(tuned * n)}/{n}); training {duration(seconds)} "
              f"(settings: {project.training.epochs:g} epoch, lr {project.training.learning_rate:g}, "
              f"r={project.lora.r})")
        misses = [row for row in result["adapter"]["answers"] if not row["passed"]]
        for row in misses[:5]:
            print(f"  tuned missed: {row['prompt']!r} -> {' '.join(row['answer'].split())[:100]!r}")
        from smolora_engine import events as ev
        from smolora_engine.runs import run_dir

        events = ev.read_events(run_dir(project.name, run_id) / "events.jsonl")
        rates = [(e.step, e.pass_rate) for e in events if isinstance(e, ev.Samples)]
        finished = next(e for e in events if isinstance(e, ev.Finished))
        share = finished.details.get("samples_share")
        print("pass rate while training (eval samples): "
              + ", ".join(f"step {s}: {'?' if r is None else f'{r:.0%}'}" for s, r in rates)
              + (f"; answering took {finished.details['samples_s']:.1f} s, {share:.1%} of the run"
                 if share is not None else ""))
        met = base <= 0.10 and tuned >= 0.90 and seconds <= 300
        print(f"targets (base <= 10 %, tuned >= 90 %, training <= 5 min): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
