"""The base model's answers kept between runs (evaluation/answer_cache.py): the same model, prompts and settings
give them back without generating; anything that could change them answers afresh."""

from __future__ import annotations

import os

from smolora_engine import events as ev
from smolora_engine import paths
from smolora_engine.cli import main
from smolora_engine.data.chat_format import ChatFormat
from smolora_engine.evaluation.answers import generate_answers
from smolora_engine.evaluation.prompts import EvalPrompt
from smolora_engine.run_text import samples_text
from smolora_engine.runs import list_runs
from tests.test_eval_samples import make_project


def _answer(model, tokenizer, prompts, **kw):
    return generate_answers(model, tokenizer, prompts, ChatFormat(), **{"max_new_tokens": 5, "base": True, **kw})


def test_base_answers_come_back_for_the_same_model_prompts_and_settings(bpe_model, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(bpe_model, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = [EvalPrompt("x", "pair", user=u) for u in ("Hi", "A longer prompt than the first")]
    fresh = _answer(model, tokenizer, prompts)
    assert not fresh.cached and fresh.texts and any(fresh.texts)
    again = _answer(model, tokenizer, prompts)
    assert again.cached and again.texts == fresh.texts
    assert len(list((paths.cache_dir() / "answers").iterdir())) == 1
    # not the base model: never looked up
    assert not generate_answers(model, tokenizer, prompts, ChatFormat(), max_new_tokens=5).cached
    # other settings, other prompts: answered afresh
    assert not _answer(model, tokenizer, prompts, max_new_tokens=4).cached
    assert not _answer(model, tokenizer, prompts[:1]).cached
    assert not _answer(model, tokenizer, prompts, batch_size=1).cached
    # the model's weights rewritten (a new modification time): answered afresh
    weights = next(folder.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert not _answer(model, tokenizer, prompts).cached
    # answers cut short by the time limit are not kept
    cut = _answer(model, tokenizer, prompts, max_new_tokens=3, time_limit_s=1e-9)
    assert cut.cut_short and not _answer(model, tokenizer, prompts, max_new_tokens=3).cached


def test_a_second_run_shows_the_base_answers_of_the_first(tiny_model_dir):
    # a fixed precision: under auto, a probe on a busy machine is not kept, the second run probes again and may
    # pick the other dtype, whose base answers are rightly answered afresh
    make_project("c", tiny_model_dir, training__max_steps=1, training__eval_steps=0,
                 eval__checks=["not_contains:@@@"], model__dtype="float32")
    assert main(["train", "--project", "c"]) == 0
    assert main(["train", "--project", "c"]) == 0
    first, second = ([e for e in run.events if isinstance(e, ev.Samples) and e.base]
                     for run in sorted(list_runs("c"), key=lambda r: r.run_id))
    (first,), (second,) = first, second
    assert not first.cached and second.cached and second.answers == first.answers
    assert "kept from an earlier run" in samples_text(second) and "kept" not in samples_text(first)
