"""The training dashboard under a flood of events: key latency and memory, quiet vs flooded.

A separate process (like the real worker) appends synthetic events (steps, with an eval every 50 and a log line
every 100) to a run's events.jsonl at --rate events/s while Pilot presses keys on
the Train screen. Each key's latency is the time from the press until its action
ran. The same keys are first pressed with no events arriving (the baseline, same
process). Prints the median and worst latency of both, the ratio, whether the
dashboard kept up with the file, and the process RSS before and after the flood.

Usage: python bench/event_flood.py [--rate 2000] [--seconds 10] [--kind steps|logs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import subprocess
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def writer(path: Path, rate: int, seconds: float, kind: str = "steps") -> int:
    """Runs in its own process, like a real training worker; returns how many events it wrote."""
    from smolora_engine import events as ev

    written = 0

    batch = max(1, rate // 100)  # a write every 10 ms
    start = time.monotonic()
    step = 0
    with open(path, "a", encoding="utf-8") as handle:
        while time.monotonic() - start < seconds:
            lines = []
            for _ in range(batch):
                step += 1
                if kind == "logs" or step % 100 == 0:
                    lines.append(ev.Log(message=f"log line {step}").to_json())
                elif step % 50 == 0:
                    lines.append(ev.Eval(step=step, eval_loss=1.0 / (1 + step / 1000)).to_json())
                else:
                    lines.append(ev.Step(step=step, max_steps=10**7, loss=2.0 / (1 + step / 500) + 0.05 * (step % 7),
                                         lr=2e-4, grad_norm=0.5, tokens=step * 256, tokens_per_s=500.0,
                                         eta_s=1000.0, memory_mb=1400.0, epoch=step / 10**5).to_json())
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            written += len(lines)
            time.sleep(max(0.0, start + written / rate - time.monotonic()))
    return written


async def press_keys(app, pane, keys: int) -> list[float]:
    """Latency of each press: from the key event (as the terminal driver posts it) until the action ran (ms)."""
    from textual import events
    latencies = []
    handled: list[float] = []
    original = pane.action_smooth

    def timed() -> None:
        handled.append(time.perf_counter())
        original()

    pane.action_smooth = timed
    for _ in range(keys):
        before = len(handled)
        started = time.perf_counter()
        app.post_message(events.Key("m", "m"))
        while len(handled) == before:
            await asyncio.sleep(0.001)
        latencies.append((handled[-1] - started) * 1000)
        await asyncio.sleep(0.05)
    pane.action_smooth = original
    return latencies


async def run(args) -> None:
    import psutil

    from smolora_engine import events as ev
    from smolora_engine.projects import create_project
    from smolora_engine.runs import process_start_time, run_dir
    from smolora_tui.app import SmoloraApp
    from smolora_tui.widgets.train_pane import TrainPane

    create_project("flood")
    folder = run_dir("flood", "20260101-000000-0001")
    folder.mkdir(parents=True)
    (folder / "run.toml").write_text('name = "flood"\n')
    events = folder / "events.jsonl"
    events.write_text(ev.Started(run_id=folder.name, project="flood", pid=os.getpid(),
                                 pid_start=process_start_time(), model="synthetic").to_json() + "\n")
    rss = psutil.Process().memory_info
    if args.trace:
        import tracemalloc

        tracemalloc.start()
    app = SmoloraApp(project="flood")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await pilot.pause(0.5)
        pane = app.screen.query_one(TrainPane)
        quiet = await press_keys(app, pane, args.keys)
        rss_before = rss().rss / 2**20
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, __file__, "--write", str(events), "--rate", str(args.rate),
                                 "--seconds", str(args.seconds), "--kind", args.kind], stdout=subprocess.PIPE, text=True)
        await pilot.pause(1.0)
        rss_early = rss().rss / 2**20
        early = tracemalloc.take_snapshot() if args.trace else None
        flooded, samples, next_sample = [], [], time.monotonic()
        while proc.poll() is None:
            flooded += await press_keys(app, pane, 5)
            if time.monotonic() >= next_sample:
                samples.append(rss().rss / 2**20)
                next_sample += args.seconds / 10
        elapsed = time.monotonic() - started
        await pilot.pause(1.0)
        rss_after = rss().rss / 2**20
        history = pane.runs.history(pane.shown)
        written = int(proc.stdout.read().strip()) + 1
        read = pane.runs.events_read
        if args.trace:
            import collections
            import gc

            from textual.dom import DOMNode

            for stat in tracemalloc.take_snapshot().compare_to(early, "lineno")[:12]:
                print(stat)
            print(collections.Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, DOMNode)).most_common(8))
    print(f"event flood: {written - 1:,} events in {elapsed:.1f} s ({(written - 1) / elapsed:,.0f} events/s written), "
          f"dashboard read {read:,} of {written:,}, last step drawn {history.plot_loss[0][-1] if history.plot_loss[0] else 0:,}")
    print(f"key latency, quiet:   median {statistics.median(quiet):6.1f} ms, worst {max(quiet):6.1f} ms ({len(quiet)} keys)")
    print(f"key latency, flooded: median {statistics.median(flooded):6.1f} ms, worst {max(flooded):6.1f} ms "
          f"({len(flooded)} keys)")
    print(f"ratio flooded/quiet (median): {statistics.median(flooded) / statistics.median(quiet):.2f}")
    print(f"RSS: {rss_before:.0f} MB before, {rss_early:.0f} MB after 1 s of flood, {rss_after:.0f} MB at the end "
          f"(+{rss_after - rss_early:.1f} MB for {written - 1 - args.rate:,} more events)")
    print("RSS through the flood (MB): " + " ".join(f"{v:.0f}" for v in samples))
    ok = read == written and max(flooded) < 100
    print(f"target (every key under 100 ms, every event read): {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--kind", choices=("steps", "logs"), default="steps",
                        help="steps (with an eval every 50 and a log line every 100), or only log lines")
    parser.add_argument("--trace", action="store_true", help="print the largest live allocations at the end")
    parser.add_argument("--write", metavar="EVENTS_FILE", help=argparse.SUPPRESS)  # the writer process
    args = parser.parse_args()
    if args.write:
        print(writer(Path(args.write), args.rate, args.seconds, args.kind))
        return
    with tempfile.TemporaryDirectory() as home:
        os.environ["SMOLORA_HOME"] = home
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
