"""Where the loss goes in a conversation: the template's own {% generation %} markers where it has them,
the prefix method otherwise, and the two checked against each other."""

import json

import pytest

from smolora_engine.data import check_data
from smolora_engine.data.render import IGNORE, render_sample
from smolora_engine.data.shapes import Sample
from smolora_engine.project import DataSettings

TURN = "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
PROMPT = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"


def chatml(assistant: str) -> str:
    """ChatML with the assistant turn written by `assistant` (a Jinja fragment that sees `m`)."""
    return ("{% for m in messages %}{% if m['role'] == 'assistant' %}" + assistant + "{% else %}" + TURN
            + "{% endif %}{% endfor %}" + PROMPT)


# SmolLM3's way: the markers take in the assistant header too.
WITH_HEADER = chatml("{% generation %}{{ '<|im_start|>assistant\\n' + m['content'] + '<|im_end|>\\n' }}"
                     "{% endgeneration %}")
# The answer and its end token, exactly what the prefix method finds.
EXACT = chatml("{{ '<|im_start|>assistant\\n' }}{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}"
               "{{ '\\n' }}")
UNMARKED = chatml("{{ '<|im_start|>assistant\\n' + m['content'] + '<|im_end|>' + '\\n' }}")
# A template whose markers leave the turn's end token out: the model would never learn to stop.
WITHOUT_END = chatml("{{ '<|im_start|>assistant\\n' }}{% generation %}{{ m['content'] }}{% endgeneration %}"
                     "{{ '<|im_end|>\\n' }}")

CHAT = [{"role": "user", "content": "The capital of France?"}, {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Spain?"}, {"role": "assistant", "content": "Madrid."}]


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trained(rendered) -> list[str]:
    return [text for text, on in rendered.segments if on]


def test_the_templates_own_markers_place_the_loss(tokenizer):
    tokenizer.chat_template = WITH_HEADER
    rendered = render_sample(Sample("chat.jsonl", 1, messages=CHAT), tokenizer)
    own = tokenizer.apply_chat_template(CHAT, return_dict=True, return_assistant_tokens_mask=True)
    assert rendered.input_ids == own["input_ids"]
    assert [label != IGNORE for label in rendered.labels] == [bool(m) for m in own["assistant_masks"]]
    assert rendered.mask == "template" and rendered.mask_missed == 0
    header = len(tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"])
    assert rendered.mask_extra == 2 * header + 2  # each turn's header, and the newline after its end token
    assert trained(rendered) == ["<|im_start|>assistant\nParis.<|im_end|>\n",
                                                              "<|im_start|>assistant\nMadrid.<|im_end|>\n"]


def test_both_methods_agree_where_both_apply(tokenizer):
    tokenizer.chat_template = EXACT
    marked = render_sample(Sample("chat.jsonl", 1, messages=CHAT), tokenizer)
    tokenizer.chat_template = UNMARKED
    prefix = render_sample(Sample("chat.jsonl", 1, messages=CHAT), tokenizer)
    assert (marked.mask, prefix.mask) == ("template", "prefix")
    assert marked.input_ids == prefix.input_ids and marked.labels == prefix.labels
    assert marked.mask_missed == marked.mask_extra == 0
    assert marked.segments == prefix.segments


def test_markers_that_leave_the_end_token_out_are_reported_and_the_end_is_trained(tokenizer, tmp_path):
    tokenizer.chat_template = WITHOUT_END
    rendered = render_sample(Sample("chat.jsonl", 1, messages=CHAT), tokenizer)
    assert rendered.mask == "template" and rendered.mask_missed == 2
    assert trained(rendered) == ["Paris.<|im_end|>", "Madrid.<|im_end|>"]

    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": CHAT[:2]}) + "\n" + json.dumps({"messages": CHAT}) + "\n")
    report = check_data(DataSettings(path=str(data)), tokenizer)
    assert report.mask == "template"
    assert [where.rsplit(":", 1)[1] for where in report.mask_missed] == ["1", "2"]
    assert "leave answer tokens or the turn's end out; they are trained too (first at" in report.summary()
    assert report.to_dict()["mask_missed_rows"] == report.mask_missed


def test_plain_text_and_raw_pairs_name_no_mask(tokenizer):
    tokenizer.chat_template = WITH_HEADER
    assert render_sample(Sample("t.txt", 1, text="Some text."), tokenizer).mask == ""
    pair = render_sample(Sample("p.jsonl", 1, prompt="Q: ", completion="A"), tokenizer)
    assert pair.mask == "template"  # a pair under a chat template is a user and an assistant turn
