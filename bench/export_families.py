"""GGUF export of every model family, on the tiny random models the tests build: each check's figures.

For each family in tests/family_models.py (a tiny random model of the architecture, with a
tokenizer and chat template reproducing the family's), exports f16, q4_0 and (with
llama-cpp-python) q4_k_m, and prints for each reader that could check the file: next-token
agreement and mean KL against the merged model, mean KL against the weights as the file stores
them, whether the reader tokenized the prompts the same, and whether llama.cpp's chat turn gave
the merged model's answer; then the Modelfile's template note. Random weights make a harsh case
for the 4-bit types (no structure to keep), so their agreement here is a floor, not a forecast.

Usage: python bench/export_families.py [--families gemma3,qwen3] [--types f16,q4_0,q4_k_m]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from smolora_engine.export import export_merged
    from smolora_engine.export.quants import llamacpp_available
    from smolora_engine.precision import cpu_model
    from smolora_engine.quiet import quiet_libraries
    from tests.family_models import FAMILIES, make_family_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--types", default="f16,q4_0" + (",q4_k_m" if llamacpp_available() else ""))
    args = parser.parse_args()
    quiet_libraries()
    print(f"CPU: {cpu_model()}; llama-cpp-python: {'yes' if llamacpp_available() else 'not installed'}")
    print(f"{'family':9} {'type':7} {'reader':12} {'agree':>6} {'KL':>9} {'KL stored':>10} tokens  chat")
    with tempfile.TemporaryDirectory() as folder:
        for family in args.families.split(","):
            model = make_family_model(Path(folder) / family, family)
            for quant in args.types.split(","):
                report = export_merged(model, Path(folder) / f"{family}-out", quant)
                for reader, check in report["checks"].items():
                    chat = check.get("chat")
                    said = "-" if chat is None else ("same answer" if chat["same_answer"] else "other answer")
                    print(f"{family:9} {quant:7} {reader:12} {check['agreement']:6.1%} {check['mean_kl']:9.2e} "
                          f"{check['as_stored']['mean_kl']:10.2e} {'same' if check['same_tokenization'] else 'DIFF':7}"
                          f" {said}")
                for reason in report["unchecked"]:
                    print(f"{family:9} {quant:7} not checked: {reason}")
                print(f"{family:9} {quant:7} ok={report['ok']}; {report['bytes'] / 2**20:.2f} MiB in "
                      f"{report['write_s']} s")
            print(f"{family:9} Ollama template: {report['ollama_template']}")


if __name__ == "__main__":
    main()
