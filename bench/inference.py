"""Inference speed: smolora's serve path against plain `model.generate`, same model and settings.

Both run greedy decoding on the embedded model in this process, alternately
(A B A B ...). Plain generate: time to first token is a `max_new_tokens=1` call,
tokens/s comes from a full call. smolora: the `Engine.generate` that `smolora
serve` uses (chat template, streaming decode, cancel check, events), with the
figures its `done` event reports. Prints both and the median ratios.

Usage: python bench/inference.py [--rounds 3] [--tokens 96]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MESSAGES = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["SMOLORA_HOME"] = home
        run(args)


def run(args) -> None:
    import torch

    from smolora_engine.projects import create_project
    from smolora_engine.serve import Engine, parse_request

    create_project("bench")
    engine = Engine("bench")
    model, tokenizer = engine.model, engine.tokenizer
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    settings = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)

    def plain() -> tuple[float, float, int]:
        with torch.inference_mode():
            started = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, **settings)
            ttft = time.perf_counter() - started
            started = time.perf_counter()
            out = model.generate(**inputs, max_new_tokens=args.tokens, **settings)
            total = time.perf_counter() - started
        n = out.shape[1] - inputs["input_ids"].shape[1]
        return ttft, (n - 1) / (total - ttft), n

    def ours() -> tuple[float, float, int]:
        request = parse_request({"id": "b", "messages": MESSAGES, "max_new_tokens": args.tokens, "temperature": 0},
                                "base")
        done = engine.generate(request, lambda event: None)
        return done.ttft_s, done.tokens_per_s, done.tokens

    plain(), ours()  # warm-up
    results: dict[str, list[tuple[float, float, int]]] = {"plain generate": [], "smolora serve": []}
    for _ in range(args.rounds):
        results["plain generate"].append(plain())
        results["smolora serve"].append(ours())
    for name, runs in results.items():
        print(f"{name:>15}: time to first token {statistics.median(r[0] for r in runs) * 1000:6.1f} ms, "
              f"{statistics.median(r[1] for r in runs):6.1f} tokens/s ({runs[0][2]} tokens)")
    ttft = [o[0] / p[0] for p, o in zip(results["plain generate"], results["smolora serve"])]
    rate = [o[1] / p[1] for p, o in zip(results["plain generate"], results["smolora serve"])]
    print(f"ttft ratio (smolora / plain, lower is better): {statistics.median(ttft):.2f}")
    print(f"ratio: {statistics.median(rate):.2f}  (tokens/s, smolora / plain; 1.00 = same speed)")


if __name__ == "__main__":
    main()
