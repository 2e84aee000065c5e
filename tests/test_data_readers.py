"""Readers and shapes: every format, every shape, every problem with its exact line."""

import json

import pytest

from smolora_engine.data import DataError, check_data, prepare
from smolora_engine.data.readers import read_source
from smolora_engine.data.rows import DataProblem, Row
from smolora_engine.project import DataSettings


def items(path, **kw):
    out = list(read_source(path, **kw))
    return [i for i in out if isinstance(i, Row)], [i for i in out if isinstance(i, DataProblem)]


def report_for(path, **kw):
    return check_data(DataSettings(path=str(path), eval_ratio=0, **kw))


def write(path, text, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ formats

def test_text_folder_recursive_lines_paragraphs_files(tmp_path):
    write(tmp_path / "a.txt", "first line\n\nsecond line\nthird\n")
    write(tmp_path / "sub" / "b.md", "# Title\nbody\n")
    write(tmp_path / "skip.csv", "text\nnot me\n")
    write(tmp_path / ".git" / "HEAD.txt", "hidden folders are not the data\n")
    rows, problems = items(tmp_path)
    assert [r.data["text"] for r in rows] == ["first line", "second line", "third", "# Title", "body"]
    assert [r.line for r in rows] == [1, 3, 4, 1, 2]
    # A file the folder's format does not read is said, with its name, never dropped unseen.
    assert [(p.file, p.kind) for p in problems] == [(str(tmp_path / "skip.csv"), "not_read")]
    assert ".txt" in problems[0].reason
    rows, _ = items(tmp_path, text_split="paragraph")
    assert [r.data["text"] for r in rows] == ["first line", "second line\nthird", "# Title\nbody"]
    assert rows[1].line == 3
    rows, _ = items(tmp_path, text_split="file")
    assert len(rows) == 2 and rows[0].data["text"].startswith("first line\n\nsecond")
    rows, _ = items(tmp_path / "a.txt")
    assert len(rows) == 3


def test_folder_of_declared_format_names_the_files_it_leaves(tmp_path):
    write(tmp_path / "part-1.jsonl", '{"text": "a"}\n')
    write(tmp_path / "part-2.ndjson", '{"text": "b"}\n')
    write(tmp_path / "README.md", "about the data\n")
    rows, problems = items(tmp_path, fmt="jsonl")
    assert [r.data["text"] for r in rows] == ["a", "b"]
    assert [(p.file, p.kind) for p in problems] == [(str(tmp_path / "README.md"), "not_read")]
    report = report_for(tmp_path, format="jsonl")
    assert report.rows_read == 2 and len(report.problems) == 1


def test_jsonl(tmp_path):
    f = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n{"text": "b"}\n')
    rows, problems = items(f)
    assert [(r.data["text"], r.line) for r in rows] == [("a", 1), ("b", 3)] and not problems


def test_json_list_knows_lines_and_object_holding_a_list(tmp_path):
    f = write(tmp_path / "d.json", '[\n  {"text": "a"},\n  {"text":\n   "b"},\n  3\n]\n')
    rows, problems = items(f)
    assert [(r.data["text"], r.line) for r in rows] == [("a", 2), ("b", 3)]
    assert problems[0].line == 5 and "expected a JSON object, got int" in problems[0].reason
    f = write(tmp_path / "o.json", json.dumps({"version": 1, "data": [{"text": "x"}, {"text": "y"}]}))
    rows, _ = items(f)
    assert [r.index for r in rows] == [0, 1]
    f = write(tmp_path / "bad.json", '[\n{"text": "a"},\n{"text": }\n]')
    rows, problems = items(f)
    assert problems[0].line == 3 and problems[0].kind == "malformed_json"


def test_csv_with_embedded_newlines_and_commas(tmp_path):
    f = write(tmp_path / "d.csv", 'text,label\n"one, with comma",1\n"two\nlines\nhere",2\nthree,3\n')
    rows, problems = items(f)
    assert [r.data["text"] for r in rows] == ["one, with comma", "two\nlines\nhere", "three"]
    assert [r.line for r in rows] == [2, 3, 6] and not problems


def test_csv_wrong_field_count_and_tsv(tmp_path):
    f = write(tmp_path / "d.csv", "prompt,completion\na,b\nonly-one\nc,d,e\n")
    rows, problems = items(f)
    assert len(rows) == 1
    assert [(p.line, p.kind) for p in problems] == [(3, "wrong_field_count"), (4, "wrong_field_count")]
    f = write(tmp_path / "d.tsv", "text\tx\nhello, world\t1\n")
    rows, _ = items(f)
    assert rows[0].data["text"] == "hello, world"


def test_json_lines_named_json_are_read_as_json_lines(tmp_path):
    """datasets' to_json writes JSON Lines, and people name them .json: read them line by line, bad lines named."""
    f = write(tmp_path / "d.json", '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n'
                                   '{broken\n{"prompt": "e", "completion": "f"}\n')
    rows, problems = items(f)
    assert [r.data["prompt"] for r in rows] == ["a", "c", "e"] and [r.line for r in rows] == [1, 2, 4]
    assert [(p.line, p.kind) for p in problems] == [(3, "malformed_json")]
    f = write(tmp_path / "two.json", '{"text": "a"} {"text": "b"}\n')  # not one per line: malformed
    rows, problems = items(f)
    assert not rows and [(p.line, p.kind) for p in problems] == [(1, "malformed_json")]


def test_csv_delimiter_is_sniffed(tmp_path):
    """Spreadsheets where the comma is the decimal mark write semicolons; a comma in a field is not a delimiter."""
    f = write(tmp_path / "semi.csv", "\ufeffprompt;completion\nprice?;1,50 EUR\nhello, you;hi\n")
    rows, problems = items(f)
    assert [r.data for r in rows] == [{"prompt": "price?", "completion": "1,50 EUR"},
                                      {"prompt": "hello, you", "completion": "hi"}] and not problems
    assert report_for(f).shape == "prompt_completion"
    f = write(tmp_path / "comma.csv", "text,label\na; b; c,1\nd;e,2\n")
    assert [r.data["text"] for r in items(f)[0]] == ["a; b; c", "d;e"]
    f = write(tmp_path / "bar.csv", "instruction|output\nsay hi|hi\n")
    assert items(f)[0][0].data == {"instruction": "say hi", "output": "hi"}
    f = write(tmp_path / "one.csv", "text\nsemi; colons; inside\n")  # one column: nothing to split on
    assert items(f)[0][0].data == {"text": "semi; colons; inside"}
    f = write(tmp_path / "utf16.csv", "prompt\tcompletion\na\tb\n".encode("utf-16"))  # "Unicode text"
    (problem,) = items(f)[1]
    assert problem.kind == "not_utf8" and "UTF-16" in problem.reason and problem.line == 1
    f = write(tmp_path / "bad.csv", "prompt;completion\na;b\nonly-one\nc;d;e\nf;g\n")  # bad rows reported
    rows, problems = items(f)
    assert [r.data["prompt"] for r in rows] == ["a", "f"]
    assert [(p.line, p.kind) for p in problems] == [(3, "wrong_field_count"), (4, "wrong_field_count")]


def test_parquet_and_save_to_disk(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    pq.write_table(pa.table({"prompt": ["p1", "p2"], "completion": ["c1", ""]}), tmp_path / "d.parquet")
    report = report_for(tmp_path / "d.parquet")
    assert report.shape == "prompt_completion" and report.rows_kept == 1
    assert report.problems[0].index == 1 and report.problems[0].line is None
    assert "row 1" in str(report.problems[0])
    Dataset.from_dict({"text": ["x", "y", "x"]}).save_to_disk(str(tmp_path / "saved"))
    report = report_for(tmp_path / "saved")
    assert (report.shape, report.rows_read, report.rows_kept, report.duplicates) == ("text", 3, 2, 1)


def test_hub_id_not_in_cache_is_explained():
    with pytest.raises(DataError, match="never downloads"):
        report_for("someone/nothing-here")


def test_unknown_extension_is_explained(tmp_path):
    f = write(tmp_path / "d.xlsx", "x")
    with pytest.raises(DataError, match="cannot tell the format"):
        report_for(f)


# ------------------------------------------------------------------ shapes

def test_shapes_are_detected(tmp_path):
    cases = {
        "text": {"text": "hello"},
        "instruction": {"instruction": "Add", "input": "1 and 2", "output": "3"},
        "prompt_completion": {"prompt": "1+1=", "completion": "2"},
        "chat": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    }
    for shape, row in cases.items():
        f = write(tmp_path / f"{shape}.jsonl", json.dumps(row) + "\n")
        assert report_for(f).shape == shape


def test_sharegpt_and_alpaca_become_chat_messages(tmp_path):
    f = write(tmp_path / "s.jsonl", json.dumps({"conversations": [
        {"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello"}]}) + "\n")
    prepared = prepare(DataSettings(path=str(f), eval_ratio=0))
    assert prepared.report.shape == "chat"
    from smolora_engine.data.doctor import samples_for_display

    sample = samples_for_display(DataSettings(path=str(f)))[0]
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant"]
    f = write(tmp_path / "a.jsonl", json.dumps({"instruction": "Add", "input": "1 and 2", "output": "3",
                                                "system": "Math."}) + "\n")
    sample = samples_for_display(DataSettings(path=str(f)))[0]
    assert sample.messages == [{"role": "system", "content": "Math."}, {"role": "user", "content": "Add\n\n1 and 2"},
                               {"role": "assistant", "content": "3"}]


def test_column_mapping_and_override(tmp_path):
    f = write(tmp_path / "d.jsonl", json.dumps({"ask": "2+2?", "reply": "4"}) + "\n")
    with pytest.raises(DataError, match="cannot tell what the rows are"):
        report_for(f)
    report = report_for(f, columns={"prompt": "ask", "completion": "reply"})
    assert report.shape == "prompt_completion" and report.rows_kept == 1
    f = write(tmp_path / "qa.jsonl", json.dumps({"q": "2+2?", "a": "4"}) + "\n")  # a common pair: no mapping needed
    assert report_for(f).shape == "prompt_completion"
    f = write(tmp_path / "b.jsonl", json.dumps({"body": "text here"}) + "\n")
    assert report_for(f, columns={"text": "body"}).rows_kept == 1


# ------------------------------------------------------------------ problems, each with its exact line

def test_every_problem_reason_with_its_line(tmp_path):
    chat = lambda *m: json.dumps({"messages": [{"role": r, "content": c} for r, c in m]})  # noqa: E731
    lines = [
        chat(("user", "ok"), ("assistant", "fine")),                       # 1 good
        '{"messages": [',                                                   # 2 malformed JSON
        json.dumps({"text": "no messages"}),                                # 3 missing field
        json.dumps({"messages": "not a list"}),                             # 4 wrong type
        chat(("assistant", "first"), ("user", "then")),                     # 5 bad role order
        chat(("user", "q"), ("assistant", "  ")),                           # 6 empty assistant turn
        chat(("user", "q"), ("assistant", "a"), ("user", "dangling")),      # 7 ends without an answer
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),     # 8 unknown role
        chat(("user", "ok"), ("assistant", "fine")),                        # 9 duplicate of 1
        json.dumps({"messages": []}),                                       # 10 empty list
    ]
    f = write(tmp_path / "chat.jsonl", "\n".join(lines) + "\n")
    raw = f.read_bytes().replace(b"dangling", b"dangl\xff\xfeing")  # line 7 is now not UTF-8
    f.write_bytes(raw)
    report = report_for(f)
    found = {p.line: (p.kind, p.reason) for p in report.problems}
    assert found[2][0] == "malformed_json"
    assert found[3] == ("missing_field", "missing field 'messages' (columns: text)")
    assert found[4] == ("wrong_type", "field 'messages' must be a list of messages, got str")
    assert found[5][0] == "role_order" and "message 1 is 'assistant' where 'user' was expected" in found[5][1]
    assert found[6] == ("empty_assistant", "empty assistant turn (message 2)")
    assert found[7][0] == "not_utf8"
    assert found[8] == ("bad_role", "message 1 has role 'wizard'; use system, user, assistant or tool")
    assert found[9] == ("duplicate", f"duplicate of {f}:1 (removed)")
    assert found[10] == ("empty_field", "field 'messages' is an empty list")
    assert (report.rows_read, report.rows_kept, report.duplicates) == (10, 1, 1)
    assert all(p.file == str(f) for p in report.problems)


def test_instruction_problems(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "a"}, {"instruction": "c", "output": ["x"]},
            {"instruction": "d", "output": ""}, {"instruction": "e", "output": None}]
    f = write(tmp_path / "i.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    report = report_for(f)
    assert [(p.line, p.kind) for p in report.problems] == [(2, "missing_field"), (3, "wrong_type"),
                                                           (4, "empty_field"), (5, "empty_field")]
    assert "data.columns.output" in report.problems[0].reason
    assert report.problems[3].reason == "field 'output' is null"  # there, but empty: not a column to map


def test_chat_continuation_after_ending_without_answer_is_a_problem(tmp_path):
    f = write(tmp_path / "c.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match="does not end with an assistant answer"):
        report_for(f)


def test_mixed_validity_file_keeps_the_good_rows(tmp_path):
    good = [json.dumps({"text": f"row {i}"}) for i in range(5)]
    f = write(tmp_path / "m.jsonl", "\n".join([good[0], "oops", good[1], '{"text": 5.5}', good[2], "{}", good[3]]))
    report = report_for(f)
    assert report.rows_read == 7 and report.rows_kept == 5  # 5.5 is accepted as text "5.5"
    assert [(p.line, p.kind) for p in report.problems] == [(2, "malformed_json"), (6, "missing_field")]


def test_empty_file_and_zero_usable_rows(tmp_path):
    f = write(tmp_path / "e.jsonl", "")
    with pytest.raises(DataError, match="no rows found"):
        report_for(f)
    f = write(tmp_path / "z.jsonl", "\n".join(json.dumps({"text": ""}) for _ in range(4)) + "\nbad\n")
    with pytest.raises(DataError) as info:
        report_for(f)
    message = str(info.value)
    assert "no usable rows (5 read)" in message
    assert "in 4 row(s): field 'text' is empty (first at" in message and f"{f}:1" in message


def test_binary_file_renamed_jsonl(tmp_path):
    f = write(tmp_path / "model.jsonl", b"\x00\x01GGUF\x00\xff" * 100)
    with pytest.raises(DataError, match="binary, not text"):
        report_for(f)


def test_csv_not_utf8_line(tmp_path):
    f = write(tmp_path / "d.csv", b"text\ngood\nbad \xff\xfe\nalso good\n")
    report = report_for(f)
    assert report.rows_kept == 2
    assert [(p.line, p.kind) for p in report.problems] == [(3, "not_utf8")]


def test_json_file_not_utf8(tmp_path):
    f = write(tmp_path / "d.json", b'[{"text": "a"},\n{"text": "\xff"}]')
    with pytest.raises(DataError, match="not UTF-8"):
        report_for(f)
