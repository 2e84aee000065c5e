"""The table formats, read by pyarrow and `datasets`: Parquet, a `save_to_disk` folder, a cached hub dataset.

They have no lines, so a row or problem is named by its index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .rows import DataProblem, DataSourceError, Item, Row


def read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        yield DataProblem(str(path), None, f"not a readable Parquet file: {exc}", kind="unreadable")
        return
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                yield Row(record, str(path), None, index)
                index += 1
    except Exception as exc:  # a damaged row group: report where reading stopped
        yield DataProblem(str(path), None, f"damaged Parquet data from this row on: {exc}", index,
                          kind="unreadable")


def read_arrow_folder(path: Path) -> Iterator[Item]:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except Exception as exc:
        yield DataProblem(str(path), None, f"not a folder written by datasets' save_to_disk: {exc}",
                          kind="unreadable")
        return
    if isinstance(loaded, DatasetDict):
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    for index, record in enumerate(loaded):
        yield Row(dict(record), str(path), None, index)


def read_hub_cache(dataset_id: str) -> Iterator[Item]:
    from datasets import load_dataset

    try:
        loaded = load_dataset(dataset_id, split="train", download_mode="reuse_cache_if_exists")
    except Exception as exc:
        raise DataSourceError(
            f"{dataset_id!r} is not a file or folder here, and not a dataset in the local Hugging Face cache "
            f"({type(exc).__name__}); smolora never downloads: copy the data here and set data.path"
        ) from exc
    for index, record in enumerate(loaded):
        yield Row(dict(record), dataset_id, None, index)
