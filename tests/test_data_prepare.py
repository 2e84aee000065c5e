"""Rendering with the chat template, length limits, chunking, split, preview, SmoLoRA parity, CLI."""

import json
import warnings

import pytest

from smolora_engine.cli import main
from smolora_engine.data import check_data, prepare
from smolora_engine.data.compat import (
    DataWarning, chunk_texts, prepare_dataset, read_csv, read_jsonl, read_txt_folder,
)
from smolora_engine.data.preview import preview
from smolora_engine.data.render import IGNORE, render_sample
from smolora_engine.data.shapes import Sample
from smolora_engine.project import DataSettings


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trained_text(tokenizer, rendered):
    return tokenizer.decode([t for t, label in zip(rendered.input_ids, rendered.labels) if label != IGNORE])


def test_chat_loss_is_on_assistant_turns_only(tokenizer):
    sample = Sample("x", messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
                                   {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                                   {"role": "assistant", "content": "A2"}])
    rendered = render_sample(sample, tokenizer)
    assert trained_text(tokenizer, rendered).replace(" ", "") == "A1<|im_end|>A2<|im_end|>"
    assert [text for text, trained in rendered.segments if trained] == ["A1<|im_end|>", "A2<|im_end|>"]
    assert "".join(text for text, _ in rendered.segments) == tokenizer.apply_chat_template(
        sample.messages, tokenize=False)


def test_text_is_trained_everywhere_and_completion_only_after_prompt(tokenizer):
    rendered = render_sample(Sample("x", text="abc"), tokenizer)
    assert all(label != IGNORE for label in rendered.labels) and rendered.trained_tokens == 4  # a b c + eos
    rendered = render_sample(Sample("x", prompt="Q:", completion="A"), tokenizer)
    assert trained_text(tokenizer, rendered).replace(" ", "") == "A<|im_end|>"


def test_truncate_or_drop_over_length(tmp_path, tokenizer):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"text": "x" * n}) for n in (5, 50, 8)) + "\n")
    report = check_data(DataSettings(path=str(f), eval_ratio=0), tokenizer, max_length=20)
    assert (report.rows_kept, report.truncated) == (3, 1) and report.tokens["max"] == 20
    # Text cut at max_length loses its end: the report says how to keep all of it.
    assert "data.chunk_size = 20" in report.length_advice and "data.chunk_size = 20" in report.summary()
    chunked = check_data(DataSettings(path=str(f), eval_ratio=0, chunk_size=10), tokenizer, max_length=20)
    assert chunked.truncated == 0 and not chunked.length_advice
    report = check_data(DataSettings(path=str(f), eval_ratio=0, over_length="drop"), tokenizer, max_length=20)
    assert (report.rows_kept, report.dropped_too_long) == (2, 1)
    assert [(p.line, p.kind) for p in report.problems] == [(2, "too_long")]
    assert not report.length_advice  # nothing was cut: the long row is reported as dropped
    f.write_text(json.dumps({"prompt": "q", "completion": "a " * 100}) + "\n")  # not text: no chunking to offer
    report = check_data(DataSettings(path=str(f), eval_ratio=0), tokenizer, max_length=60)
    assert report.truncated == 1 and "raise training.max_length" in report.length_advice


def test_answer_beyond_max_length_is_reported(tmp_path, tokenizer):
    f = tmp_path / "c.jsonl"
    row = {"messages": [{"role": "user", "content": "q" * 60}, {"role": "assistant", "content": "a"}]}
    f.write_text(json.dumps(row) + "\n" + json.dumps({"messages": [row["messages"][0] | {"content": "q"},
                                                                   row["messages"][1]]}) + "\n")
    report = check_data(DataSettings(path=str(f), eval_ratio=0), tokenizer, max_length=40)
    assert report.rows_kept == 1
    assert report.problems[0].line == 1 and "nothing left to train on" in report.problems[0].reason


def test_token_statistics_and_histogram(tmp_path, tokenizer):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"text": "y" * n}) for n in range(1, 101)) + "\n")
    report = check_data(DataSettings(path=str(f), eval_ratio=0), tokenizer)
    assert report.tokens == {"min": 2, "median": 51, "p95": 96, "max": 101, "per_epoch": 5150,
                             "trained_per_epoch": 5150}
    assert sum(count for _lo, _hi, count in report.histogram()) == 100


def test_chunking_by_words_and_tokens(tmp_path, tokenizer):
    f = tmp_path / "t.txt"
    f.write_text("one two three four five six seven\n")
    report = check_data(DataSettings(path=str(f), chunk_size=3, chunk_unit="words", eval_ratio=0))
    assert report.rows_kept == 3
    report = check_data(DataSettings(path=str(f), chunk_size=10, chunk_unit="tokens", eval_ratio=0), tokenizer)
    assert report.rows_kept == 4  # 33 characters, one token each in the tiny tokenizer
    assert report.tokens["max"] == 11  # 10 + eos


def test_split_ratio_seed_and_separate_eval_file(tmp_path, tokenizer):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"row {i}"}) for i in range(40)) + "\n")
    a = prepare(DataSettings(path=str(f), eval_ratio=0.25), tokenizer)
    b = prepare(DataSettings(path=str(f), eval_ratio=0.25), tokenizer)
    assert (len(a.train), len(a.eval)) == (30, 10)
    assert [r.input_ids for r in a.eval] == [r.input_ids for r in b.eval]
    c = prepare(DataSettings(path=str(f), eval_ratio=0.25, split_seed=1), tokenizer)
    assert [r.input_ids for r in a.eval] != [r.input_ids for r in c.eval]
    e = tmp_path / "eval.jsonl"
    e.write_text(json.dumps({"text": "held"}) + "\n")
    d = prepare(DataSettings(path=str(f), eval_path=str(e)), tokenizer)
    assert (len(d.train), len(d.eval), d.report.eval_source) == (40, 1, str(e))


def test_preview_head_and_cheap_count(tmp_path):
    f = tmp_path / "big.jsonl"
    with open(f, "w") as handle:
        for i in range(5000):
            handle.write(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n")
        handle.write("broken\n")
    result = preview(str(f), n=3)
    assert result.rows == [{"prompt": "p0", "completion": "c0"}, {"prompt": "p1", "completion": "c1"},
                           {"prompt": "p2", "completion": "c2"}]
    assert result.where == [f"{f}:1", f"{f}:2", f"{f}:3"]
    assert (result.total_rows, result.shape, result.columns) == (5001, "prompt_completion", ["prompt", "completion"])


def test_smolora_helpers_behave_as_before_but_report(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "a.txt").write_text("  hello  \n\nworld\n")
    (folder / "b.md").write_text("ignored\n")
    assert read_txt_folder(str(folder)) == ["hello", "world"]
    j = tmp_path / "d.jsonl"
    j.write_text('{"text": " a "}\nnot json\n{"other": 1}\n{"text": "b"}\n')
    with pytest.warns(DataWarning) as caught:
        assert read_jsonl(str(j)) == ["a", "b"]
    message = str(caught[0].message)
    assert "2 row(s) skipped" in message and f"{j}:2: malformed JSON" in message and f"{j}:3: missing field" in message
    c = tmp_path / "d.csv"
    c.write_text('text,x\n"a, b",1\n,2\n')
    with pytest.warns(DataWarning):
        assert read_csv(str(c)) == ["a, b"]
    assert chunk_texts(["a b c d e"], 2) == ["a b", "c d", "e"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        dataset = prepare_dataset(str(j), chunk_size=0)
    assert dataset.column_names == ["text"] and dataset["text"] == ["a", "b"]
    with pytest.raises(ValueError, match="Cannot infer file type"):
        prepare_dataset(str(tmp_path / "x.parquet"))


def test_cli_data_check_json(tmp_path, capsys):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "a"}\nnope\n{"text": "b"}\n')
    assert main(["data", "check", str(f), "--json", "--no-tokens"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["shape"], data["rows_read"], data["rows_kept"]) == ("text", 3, 2)
    assert data["problems"] == [{"file": str(f), "line": 2, "row": None, "kind": "malformed_json",
                                 "reason": "malformed JSON: Expecting value (column 1)"}]
    f.write_text("nope\n")
    assert main(["data", "check", str(f), "--json", "--no-tokens"]) == 2
    assert "no usable rows" in json.loads(capsys.readouterr().out)["error"]


def test_cli_data_check_with_project_tokenizer(tmp_path, capsys, tiny_model_dir):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "abc"}\n')
    assert main(["init", "p", "--model", str(tiny_model_dir), "--data", str(f)]) == 0
    assert main(["data", "check", "--project", "p", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["tokens"]["max"] == 4


def test_cli_data_sample_marks_trained_span(tmp_path, capsys, tiny_model_dir):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                          {"role": "assistant", "content": "Yo"}]}) + "\n")
    main(["init", "p", "--model", str(tiny_model_dir), "--data", str(f)])
    capsys.readouterr()
    assert main(["data", "sample", "--project", "p"]) == 0
    out = capsys.readouterr().out
    assert "<<<Yo<|im_end|>>>>" in out and "<|im_start|>user\nHi" in out


SMOLLM2_LIKE = (  # a ChatML template that inserts its own system message, as SmolLM2's and Qwen2.5's do
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful bot.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def default_system_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = SMOLLM2_LIKE
    return tokenizer


def test_pairs_render_through_the_chat_template_with_the_loss_on_the_answer(tokenizer):
    from smolora_engine.data.chat_format import ChatFormat

    sample = Sample("x", prompt="What is 2+2?", completion="4")
    rendered = render_sample(sample, tokenizer)  # auto: the model has a template
    assert "".join(text for text, _ in rendered.segments) == tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}], tokenize=False)
    assert [text for text, trained in rendered.segments if trained] == ["4<|im_end|>"]
    raw = render_sample(sample, tokenizer, fmt=ChatFormat(pairs="raw"))  # for base models: plain concatenation
    assert "".join(text for text, _ in raw.segments) == "What is 2+2?4<|im_end|>"
    assert trained_text(tokenizer, raw).replace(" ", "") == "4<|im_end|>"


def test_pair_format_chat_without_a_template_is_a_clear_problem(tiny_model_dir):
    from transformers import AutoTokenizer

    from smolora_engine.data.chat_format import ChatFormat
    from smolora_engine.data.render import RenderError

    bare = AutoTokenizer.from_pretrained(tiny_model_dir)
    bare.chat_template = None
    sample = Sample("x", prompt="Q", completion="A")
    assert "".join(t for t, _ in render_sample(sample, bare).segments) == "QA<|im_end|>"  # auto: raw
    with pytest.raises(RenderError, match="pair_format"):
        render_sample(sample, bare, fmt=ChatFormat(pairs="chat"))


@pytest.mark.parametrize("prompt, completion, shape", [
    ("q", "a", "prompt_completion"), ("question", "answer", "prompt_completion"),
    ("input", "output", "prompt_completion"), ("prompt", "response", "prompt_completion"),
    ("query", "answer", "prompt_completion"), ("instruction", "response", "instruction"),
])
def test_common_column_pairs_are_detected(tmp_path, prompt, completion, shape):
    from smolora_engine.data.shapes import detect_shape

    assert detect_shape([{prompt: "What is 2+2?", completion: "4"}] * 3) == shape
    f = tmp_path / "pairs.csv"
    f.write_text(f"{prompt},{completion}\nWhat is 2+2?,4\nAnd 3+3?,6\n")
    assert preview(str(f)).shape == shape


def test_the_system_message_training_used_is_the_one_chat_uses(default_system_tokenizer, tokenizer):
    from smolora_engine.data.chat_format import ChatFormat, template_default_system

    assert template_default_system(default_system_tokenizer) == "You are a helpful bot."
    assert template_default_system(tokenizer) == ""  # the plain ChatML template adds none
    fmt = ChatFormat.of(DataSettings(system_prompt="Answer in French."))
    assert fmt.system_in_effect(default_system_tokenizer) == "Answer in French."
    assert ChatFormat().system_in_effect(default_system_tokenizer) == "You are a helpful bot."
    sample = Sample("x", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Salut"}])
    trained = "".join(text for text, _ in render_sample(sample, default_system_tokenizer, fmt=fmt).segments)
    asked = fmt.prompt(default_system_tokenizer, [{"role": "user", "content": "Hi"}])
    assert trained.startswith(asked) and "Answer in French." in asked and "helpful bot" not in asked
    # a conversation that brings its own system message keeps it, in training and in chat
    own = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    assert "Be terse." in fmt.prompt(default_system_tokenizer, own) and "French" not in fmt.prompt(
        default_system_tokenizer, own)


def test_template_options_reach_the_template(tokenizer, tiny_model_dir):
    from transformers import AutoTokenizer

    from smolora_engine.data.chat_format import ChatFormat

    thinking = AutoTokenizer.from_pretrained(tiny_model_dir)
    thinking.chat_template = tokenizer.chat_template.replace(
        "{{ '<|im_start|>assistant\n' }}",
        "{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and not enable_thinking %}"
        "{{ '<think>\n\n</think>\n\n' }}{% endif %}")
    user = [{"role": "user", "content": "Hi"}]
    assert "<think>" in ChatFormat(options={"enable_thinking": False}).prompt(thinking, user)
    assert "<think>" not in ChatFormat().prompt(thinking, user)


# Mistral v0.3's template, in its structure: the system message goes into the *last* user turn, so a
# conversation's prefixes are not prefixes of it, and the answer is written as " " + content.
MISTRAL_STYLE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + message['content'] "
    "+ '[/INST]' }}{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}"
)


def test_a_token_that_overlaps_the_answer_is_trained_under_a_mistral_style_template(bpe_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bpe_model)
    tokenizer.chat_template = MISTRAL_STYLE
    sample = Sample("x", messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "The capital of France?"},
                                   {"role": "assistant", "content": "Paris."}])
    rendered = render_sample(sample, tokenizer)
    text = "".join(piece for piece, _ in rendered.segments)
    answer = text.index("Paris.")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    first = next(i for i, (start, end) in enumerate(offsets) if start <= answer < end)
    assert offsets[first][0] < answer  # the answer's first token starts on the template's space ...
    assert rendered.labels[first] != IGNORE  # ... and is trained all the same
    assert trained_text(tokenizer, rendered).strip() == "Paris.<|im_end|>"
    assert all(label == IGNORE for label in rendered.labels[:first])
