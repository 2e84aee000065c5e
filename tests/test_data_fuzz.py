"""Property test: random and mutated files fed to every reader end as rows or reported problems."""

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from smolora_engine.data import DataError, check_data
from smolora_engine.data.readers import read_source
from smolora_engine.data.rows import DataProblem, Row
from smolora_engine.project import DataSettings

SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet"]
SEED_ROWS = [
    {"text": "hello"}, {"instruction": "i", "output": "o"}, {"prompt": "p", "completion": "c"},
    {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
    {"conversations": [{"from": "human", "value": "u"}, {"from": "gpt", "value": "a"}]},
]


def seed_bytes(suffix: str) -> bytes:
    if suffix == ".parquet":
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.table({"prompt": ["a", "b", None], "completion": ["c", "", "d"]}), buffer)
        return buffer.getvalue()
    if suffix == ".json":
        return json.dumps(SEED_ROWS, indent=1).encode()
    if suffix in (".csv", ".tsv"):
        sep = "," if suffix == ".csv" else "\t"
        return f'prompt{sep}completion\n"a{sep} b"{sep}c\nd{sep}"e\nf"\n'.encode()
    return "\n".join(json.dumps(r) for r in SEED_ROWS).encode() + b"\n"


@st.composite
def mutated(draw):
    suffix = draw(st.sampled_from(SUFFIXES))
    data = bytearray(seed_bytes(suffix))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "random"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:
            data = bytearray(draw(st.binary(max_size=300)))
    return suffix, bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_every_reader_ends_in_rows_or_problems(tmp_path_factory, case):
    suffix, data = case
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(data)
    for item in read_source(path):
        assert isinstance(item, (Row, DataProblem))
    try:
        report = check_data(DataSettings(path=str(path), eval_ratio=0))
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert report.rows_kept + len(report.problems) >= report.rows_read - report.duplicates
