"""Eval checks and prompts files: every kind, and every bad entry named with its field or file and line."""

from __future__ import annotations

import json

import pytest

from smolora_engine.evaluation.answers import score_answers
from smolora_engine.evaluation.checks import CheckError, parse_check, parse_checks
from smolora_engine.evaluation.prompts import PromptsError, prompt_of_sample, read_prompts_file, select_prompts
from smolora_engine.project import Project
from smolora_engine.project_load import blocking
from smolora_engine.project_fields import set_value


@pytest.mark.parametrize("check, answer, passed", [
    ("contains:Paris", "The capital is Paris.", True),
    ("contains:Paris", "The capital is paris.", False),  # case-sensitive, as documented
    ("not_contains:sorry", "Sure, here it is.", True),
    ("not_contains:sorry", "I am sorry, I cannot.", False),
    ("regex:(?i)^the capital", "The capital is Bern.", True),
    ("regex:-- Smolora$", "Bern.\n-- Smolora", True),
    ("regex:-- Smolora$", "-- Smolora, said Bern.", False),
    ("max_words:3", "one two three", True),
    ("max_words:3", "one two three four", False),
    ("json", '{"a": [1, 2]}', True),
    ("json", '```json\n{"a": 1}\n```', True),
    ("json", "{'a': 1}", False),
    ("contains:a:b", "x a:b y", True),  # only the first colon separates the kind
])
def test_each_check_kind_passes_and_fails(check, answer, passed):
    assert parse_check(check).passes(answer) is passed


@pytest.mark.parametrize("text, says", [
    ("contain:x", "unknown check 'contain'"),
    ("regex:((", "not a valid regular expression"),
    ("max_words:many", "positive whole number"),
    ("max_words:0", "positive whole number"),
    ("contains:", "needs a value"),
    ("json:yes", "json takes no value"),
])
def test_a_bad_check_says_what_is_wrong(text, says):
    with pytest.raises(CheckError, match=says.replace("(", r"\(")):
        parse_check(text)


def test_a_bad_check_in_the_project_is_a_validation_error_naming_the_field_and_entry():
    _project, problems = set_value(Project(name="p"), "eval.checks", ["contains:ok", "regex:(("])
    (problem,) = blocking(problems)
    assert problem.field == "eval.checks"
    assert "check 2 of 2" in problem.message and "regex:((" in problem.message
    _project, problems = set_value(Project(name="p"), "eval.checks", ["contains:ok", "json", "max_words:40"])
    assert not blocking(problems)
    with pytest.raises(CheckError, match="check 1 of 1"):
        parse_checks([3])


def test_early_stopping_without_evals_is_a_validation_error():
    project, _ = set_value(Project(name="p"), "training.eval_steps", 0)
    _project, problems = set_value(project, "training.early_stopping_patience", 3)
    assert [p.field for p in blocking(problems)] == ["training.early_stopping_patience"]


def test_a_prompts_file_names_every_bad_row_with_its_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join([
        json.dumps({"prompt": "Capital of France?", "checks": ["contains:Paris"]}),
        '{"prompt": "broken',
        json.dumps({"prompt": "Name a prime", "checks": ["contains:"]}),
        json.dumps({"title": "no prompt here"}),
        "",
        json.dumps({"prompt": "fine"}),
    ]) + "\n")
    with pytest.raises(PromptsError) as caught:
        read_prompts_file(str(path))
    where = [(p.line, p.kind) for p in caught.value.problems]
    assert where == [(2, "malformed_json"), (3, "bad_check"), (4, "missing_field")]
    assert f"{path}:2" in str(caught.value)
    assert "columns: title" in caught.value.problems[2].reason


def test_prompts_from_every_shape_of_row(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": "What is 2+2?", "reference": "4", "checks": "contains:4"},
        {"question": "Capital of Italy?", "answer": "Rome"},
        {"instruction": "Translate", "input": "bonjour"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
        {"conversations": [{"from": "human", "value": "Yo"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = read_prompts_file(str(path))
    assert [p.kind for p in prompts] == ["pair", "pair", "pair", "chat", "chat", "chat"]
    assert [str(c) for c in prompts[0].checks] == ["contains:4"] and prompts[0].reference == "4"
    assert prompts[1].reference == "Rome" and prompts[2].user == "Translate\n\nbonjour"
    assert prompts[3].messages == rows[3]["messages"] and prompts[3].reference is None
    assert prompts[4].messages == rows[4]["messages"][:1] and prompts[4].reference == "Hello!"
    assert prompts[5].label == "Yo" and prompts[0].where == f"{path}:1"
    text = tmp_path / "prompts.txt"
    text.write_text("First prompt\n\nSecond prompt\n")
    assert [p.user for p in read_prompts_file(str(text))] == ["First prompt", "Second prompt"]
    chosen, source = select_prompts(str(text), 1, [])
    assert len(chosen) == 1 and "prompts.txt" in source


def test_held_out_samples_become_prompts_with_their_answers_as_references():
    from smolora_engine.data.shapes import Sample

    chat = Sample("d.jsonl", 3, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                          {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}])
    prompt = prompt_of_sample(chat, 1)
    assert prompt.messages == chat.messages[:3] and prompt.reference == "d" and "d.jsonl:3" in prompt.where
    text = prompt_of_sample(Sample("t.txt", 1, text="one two three four five six"), 2)
    assert (text.kind, text.user, text.reference) == ("text", "one two three", "four five six")


def test_the_pass_rate_counts_only_prompts_that_have_checks(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "a", "checks": ["contains:yes"]}) + "\n" + json.dumps({"prompt": "b"})
                    + "\n")
    prompts = read_prompts_file(str(path))
    scored = score_answers(prompts, ["yes", "whatever"], [])
    assert scored.pass_rate == 1.0 and scored.checked == 1 and scored.rows[1]["passed"] is None
    scored = score_answers(prompts, ["no", "whatever"], parse_checks(["max_words:1"]))
    assert scored.pass_rate == 0.5 and scored.rows[0]["checks"] == [
        {"check": "max_words:1", "passed": True}, {"check": "contains:yes", "passed": False}]
    assert score_answers(prompts, ["", ""], []).pass_rate is not None
    assert score_answers(prompts[1:], [""], []).pass_rate is None  # no checks: unknown, not 0 %


@pytest.mark.parametrize("checks", [["contains:Paris", "max_words:40"], ["contains:Hello, world", r"regex:\d{1,3}$"],
                                    ["regex:-- Smolora$"]])
def test_the_settings_form_gives_back_the_checks_it_shows(checks):
    from smolora_engine.project_fields import field_specs
    from smolora_tui.widgets.settings_form import as_text, parse_text

    spec = next(s for s in field_specs() if s.key == "eval.checks")
    assert parse_text(spec, as_text(spec, checks)) == checks
