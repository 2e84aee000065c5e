"""GGUF export of the embedded model at every type: time, file size, and the checks' figures.

Exports SmolLM2-135M-Instruct (the embedded default, as `smolora merge` leaves a merged
folder) at each type `smolora export` offers, in one process, and prints for each: the time
to write (and quantize) the file, its size against f16's, and each check's next-token
agreement and mean KL against the merged model and against the weights as the file stores
them, plus whether llama.cpp's chat turn stopped at the end of the turn. The k-quants need
llama-cpp-python; without it they are listed as not available.

Usage: python bench/export_types.py [--types q4_k_m,q8_0,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from smolora_engine.export import ExportError, export_merged
    from smolora_engine.export.quants import QUANTS
    from smolora_engine.models import DEFAULT_MODEL, ensure_model
    from smolora_engine.precision import cpu_bf16_flags, cpu_model
    from smolora_engine.quiet import quiet_libraries

    parser = argparse.ArgumentParser()
    parser.add_argument("--types", default=",".join(QUANTS))
    args = parser.parse_args()
    quiet_libraries()
    merged = ensure_model(DEFAULT_MODEL)
    print(f"CPU: {cpu_model()}; bf16/AMX flags: {', '.join(cpu_bf16_flags()) or 'none'}; {os.cpu_count()} cores; "
          f"model {DEFAULT_MODEL}")
    sizes: dict[str, int] = {}
    order = args.types.split(",")  # f16 first where asked, so the others' sizes compare with it
    order.sort(key=lambda q: q != "f16")
    with tempfile.TemporaryDirectory() as folder:
        for quant in order:
            started = time.perf_counter()
            try:
                report = export_merged(merged, Path(folder) / quant, quant)
            except ExportError as exc:
                print(f"{quant}: not available ({exc})")
                continue
            seconds = time.perf_counter() - started
            sizes[quant] = report["bytes"]
            ratio = f", {report['bytes'] / sizes['f16']:.2f}x f16" if "f16" in sizes else ""
            print(f"{quant}: {report['bytes'] / 2**20:.1f} MiB{ratio}, written in {report['write_s']:.1f} s "
                  f"({seconds:.1f} s with the checks), "
                  f"verdict {'ok' if report['ok'] else 'FAILED' if report['ok'] is False else 'not checked'}")
            for name, check in report["checks"].items():
                stored = check["as_stored"]
                chat = check.get("chat")
                print(f"         {name:>12}: agreement {check['agreement']:.1%}, KL {check['mean_kl']:.4f}; as stored "
                      f"{stored['agreement']:.1%}, KL {stored['mean_kl']:.5f}; same tokenization "
                      f"{'yes' if check['same_tokenization'] else 'NO'}"
                      + (f"; chat turn {'stopped at the end of the turn' if chat['stopped_at_end_of_turn'] else 'did not stop'}"
                         f", {'same answer' if chat['same_answer'] else 'another answer'}: {chat['answer'][:60]!r}"
                         if chat else ""))
            for reason in report["unchecked"]:
                print(f"         not checked: {reason}")


if __name__ == "__main__":
    main()
