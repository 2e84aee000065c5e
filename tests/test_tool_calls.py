"""Chat data with tool calls: the forms datasets write them in, the loss on the calls and the answers
(never on the tools' results), and a row the model's template cannot show reported, not trained wrong.

The templates are written here: each keeps the structure of a family's tool calling (Qwen3's
<tool_call> blocks and think block on the last turn, Llama 3's one call a turn and JSON-quoted
results), and ChatML, which writes no calls at all (SmolLM2's).
"""

from __future__ import annotations

import json

import pytest

from smolora_engine.data import check_data
from smolora_engine.data.render import NOT_RENDERED, RenderError, render_sample
from smolora_engine.data.rows import DataProblem, Row
from smolora_engine.data.shapes import to_sample
from smolora_engine.evaluation.answers import prompt_ids
from smolora_engine.evaluation.prompts import prompt_of_row
from smolora_engine.data.chat_format import ChatFormat
from smolora_engine.project import DataSettings

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# Qwen3's way: tools in the system turn, calls as <tool_call> JSON, results in a user turn, and an empty
# think block on the turns after the last user message, when rendered last.
QWEN3_TOOLS = (
    "{% if tools %}{{ '<|im_start|>system\\n# Tools\\n<tools>' }}{% for t in tools %}{{ '\\n' + (t | tojson) }}"
    "{% endfor %}{{ '\\n</tools><|im_end|>\\n' }}{% endif %}"
    "{% set ns = namespace(last=-1) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}"
    "{% endif %}{% endfor %}"
    "{% for m in messages %}{% if m.role == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% if loop.index0 > ns.last and loop.last %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{{ m.content }}"
    "{% for c in m.tool_calls or [] %}{{ '<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' "
    "+ (c.function.arguments | tojson) + '}\\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\\n' }}"
    "{% elif m.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# Llama 3's way: one call a turn (more raise), results written with tojson under the ipython role.
LLAMA3_TOOLS = (
    "{% for m in messages %}{% if m.role == 'user' and loop.first and tools %}"
    "{{ '<|start_header_id|>user<|end_header_id|>\\n\\n' }}{% for t in tools %}{{ t | tojson }}{% endfor %}"
    "{{ '\\n' + m.content + '<|eot_id|>' }}"
    "{% elif m.tool_calls %}{% if m.tool_calls | length != 1 %}{{ raise_exception('This model only supports "
    "single tool-calls at once!') }}{% endif %}{% set c = m.tool_calls[0].function %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n{\"name\": \"' + c.name + '\", \"parameters\": ' "
    "+ (c.arguments | tojson) + '}<|eot_id|>' }}"
    "{% elif m.role == 'tool' %}{{ '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + (m.content | tojson) "
    "+ '<|eot_id|>' }}"
    "{% else %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}
QUESTION = {"role": "user", "content": "How warm is it in Paris?"}
RESULT = '{"celsius": 21}'
ANSWER = {"role": "assistant", "content": "It is 21 °C in Paris."}


def openai_row(**call) -> dict:
    call = call or {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    return {"messages": [QUESTION, {"role": "assistant", "content": None, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": "call_1", "content": RESULT}, ANSWER],
            "tools": json.dumps([WEATHER])}


def sample(data: dict, line: int = 1):
    return to_sample(Row(data, "tools.jsonl", line), "chat", {})


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trained(rendered) -> list[str]:
    return [text for text, on in rendered.segments if on]


def test_the_forms_datasets_write_calls_in_become_one():
    openai = sample(openai_row())
    bare = sample(openai_row(name="get_weather", arguments={"city": "Paris"}))
    sharegpt = sample({"conversations": [{"from": "human", "value": QUESTION["content"]},
                                         {"from": "function_call",
                                          "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
                                         {"from": "observation", "value": RESULT},
                                         {"from": "gpt", "value": ANSWER["content"]}],
                       "tools": [WEATHER["function"]]})
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    assert openai.messages[1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert openai.messages[2] == {"role": "tool", "content": RESULT, "tool_call_id": "call_1"}
    assert [m["role"] for m in sharegpt.messages] == ["user", "assistant", "tool", "assistant"]
    assert bare.messages[1] == sharegpt.messages[1] == openai.messages[1]
    assert openai.tools == sharegpt.tools == [WEATHER]
    assert openai.key() == bare.key() != sample({"messages": openai_row()["messages"]}).key()  # tools count
    legacy = openai_row()  # OpenAI's older function calling: one function_call, then a "function" result
    legacy["messages"][1] = {"role": "assistant", "content": None,
                             "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    legacy["messages"][2] = {"role": "function", "name": "get_weather", "content": RESULT}
    assert sample(legacy).messages[1:3] == [openai.messages[1], {"role": "tool", "content": RESULT,
                                                                   "name": "get_weather"}]
    as_text = openai_row()  # tool_calls kept as a JSON string, as some datasets store them
    as_text["messages"][1]["tool_calls"] = json.dumps(as_text["messages"][1]["tool_calls"])
    as_data = {"conversations": [{"from": "human", "value": QUESTION["content"]},  # function_call as an object
                                 {"from": "function_call", "value": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                                 {"from": "observation", "value": RESULT}, {"from": "gpt", "value": ANSWER["content"]}]}
    assert sample(as_text).messages[1] == sample(as_data).messages[1] == openai.messages[1]


def test_calls_written_in_the_assistants_text_are_trained_as_text(tokenizer):
    """Hermes-style data: the call is the assistant's text (<tool_call>…), the result a tool turn."""
    tokenizer.chat_template = CHATML
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    hermes = sample({"conversations": [{"from": "human", "value": QUESTION["content"]}, {"from": "gpt", "value": call},
                                       {"from": "Tool", "value": f"<tool_response>{RESULT}</tool_response>"},
                                       {"from": "gpt", "value": ANSWER["content"]}]})
    assert [m["role"] for m in hermes.messages] == ["user", "assistant", "tool", "assistant"]
    assert trained(render_sample(hermes, tokenizer)) == [call + "<|im_end|>", ANSWER["content"] + "<|im_end|>"]


def test_bad_tool_rows_are_reported_with_their_line_and_the_good_ones_kept(tmp_path, tokenizer):
    tokenizer.chat_template = QWEN3_TOOLS
    rows = [
        openai_row(),
        openai_row(type="function", function={"name": "get_weather", "arguments": '{"city": Paris}'}),
        {"messages": [QUESTION, {"role": "tool", "content": RESULT}, ANSWER]},
        openai_row(type="function", function={"arguments": "{}"}),
        {**openai_row(), "tools": '{"name": "get_weather"}'},
        {"messages": [QUESTION, openai_row()["messages"][1]]},  # a call as the last turn: trained on its own
    ]
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = check_data(DataSettings(path=str(data)), tokenizer)
    problems = {p.line: (p.kind, p.reason) for p in report.problems}
    assert sorted(problems) == [2, 3, 4, 5]
    assert problems[2][0] == "bad_tool_call" and "tool call 1 (get_weather): arguments is not valid JSON" in problems[2][1]
    assert problems[3] == ("role_order", "bad role order: message 2 is 'tool' where 'assistant' was expected (system "
                                         "first, then user and assistant alternating; tool results only after an "
                                         "assistant's turn)")
    assert "tool call 1 has no function name" in problems[4][1]
    assert "field 'tools': tools must be a list of function schemas, got dict" in problems[5][1]
    assert report.rows_kept == len(report.token_lengths) == 2


def test_the_calls_and_the_answer_are_trained_not_the_results(tokenizer):
    tokenizer.chat_template = QWEN3_TOOLS
    rendered = render_sample(sample(openai_row()), tokenizer)
    assert trained(rendered) == ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                                 '</tool_call><|im_end|>',
                                 "<think>\n\n</think>\n\nIt is 21 °C in Paris.<|im_end|>"]
    text = "".join(t for t, _ in rendered.segments)
    assert '"name": "get_weather"' in text.split("<|im_start|>user")[0]  # the tools, shown before the question
    assert RESULT in text and not any(RESULT in t for t in trained(rendered))


def test_llama_results_written_as_json_strings_and_one_call_a_turn(tokenizer):
    tokenizer.chat_template = LLAMA3_TOOLS
    rendered = render_sample(sample(openai_row()), tokenizer)
    assert trained(rendered) == ['{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
                                 "It is 21 °C in Paris.<|eot_id|>"]
    two = openai_row()
    two["messages"][1]["tool_calls"] *= 2
    with pytest.raises(RenderError, match="refuses this conversation: This model only supports single tool-calls"):
        render_sample(sample(two), tokenizer)


def test_a_template_that_writes_no_calls_fails_the_row_with_what_to_do(tokenizer):
    tokenizer.chat_template = CHATML
    with pytest.raises(RenderError, match=r"leaves out message 2's tool call\(s\) \(get_weather\): use a model whose"):
        render_sample(sample(openai_row()), tokenizer)
    no_tools = {"messages": [QUESTION, ANSWER], "tools": [WEATHER]}
    with pytest.raises(RenderError, match=r"does not show the row's tools \(get_weather\)"):
        render_sample(sample(no_tools), tokenizer)


def test_an_eval_prompt_ending_with_a_tool_result_is_answered_with_its_tools(tokenizer):
    tokenizer.chat_template = QWEN3_TOOLS
    row = openai_row()
    row["messages"] = row["messages"][:3]
    prompt = prompt_of_row(Row(row, "prompts.jsonl", 1))
    assert not isinstance(prompt, DataProblem)
    assert [m["role"] for m in prompt.messages] == ["user", "assistant", "tool"] and prompt.tools == [WEATHER]
    text = ChatFormat().prompt(tokenizer, prompt.messages, prompt.tools)
    assert prompt_ids(prompt, tokenizer, ChatFormat()) == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert text.startswith("<|im_start|>system\n# Tools") and text.endswith("</tool_response><|im_end|>\n"
                                                                             "<|im_start|>assistant\n")
    held_out = prompt_of_row(Row({"messages": [QUESTION, openai_row()["messages"][1]], "tools": [WEATHER]},
                                 "prompts.jsonl", 2))
    assert held_out.reference == '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def test_the_sample_view_names_a_row_its_template_cannot_render(tmp_path, tiny_model_dir, capsys):
    from smolora_engine.cli import main
    from smolora_engine.projects import create_project

    data = tmp_path / "tools.jsonl"
    data.write_text(json.dumps(openai_row()) + "\n")
    create_project("tool-sample", model=str(tiny_model_dir), data=str(data))  # SmolLM2's template: no calls
    assert main(["data", "sample", "--project", "tool-sample", "--index", "0", "--json"]) == NOT_RENDERED
    assert f"{data}:1: the model's chat template leaves out message 2's tool call(s)" in capsys.readouterr().err
