"""Datasets: readers for every common format, shape detection, rendering, and the data doctor."""

from .doctor import DataError, DataReport, PreparedData, check_data, prepare
from .readers import read_source
from .rows import DataProblem, DataSourceError, Row
from .shapes import SHAPES, Sample, detect_shape

__all__ = ["DataError", "DataProblem", "DataReport", "DataSourceError", "PreparedData", "Row", "SHAPES",
           "Sample", "check_data", "detect_shape", "prepare", "read_source"]
