"""Property test of the CSV reader: whatever bytes a file holds, checking it and reading it back end in samples or
in atlas's own DataError, never another exception; and every sample read back passes the rules."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.errors import AtlasError
from atlas.ingest.csv_file import check_csv_files

HEADER = b"timestamp,metric,series,value\n"
FIELDS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["2024-01-01T00:00:00Z", "1704067200", "0999-01-01", "nan", "1e400", "-0", '"', '""', "\x00"]),
    st.floats().map(repr),
    st.integers().map(str),
)
ROWS = st.lists(st.lists(FIELDS, min_size=0, max_size=6).map(",".join), max_size=6)
FILES = st.one_of(
    ROWS.map(lambda rows: HEADER + "\n".join(rows).encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda tail: HEADER + tail),
)
DIRECTORY = Path(tempfile.mkdtemp(prefix="atlas-csv-property-"))  # hypothesis forbids function-scoped fixtures


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILES, st.booleans())
def test_any_file_gives_samples_or_a_data_error(content: bytes, skip_bad: bool) -> None:
    path = DIRECTORY / "generated.csv"
    path.write_bytes(content)
    try:
        with check_csv_files([path], skip_bad=skip_bad) as checked:
            samples = list(checked.samples())
    except AtlasError:
        return
    assert len(samples) == checked.rows
    for sample in samples:
        assert math.isfinite(sample.value)
        assert 1000 <= sample.timestamp.year <= 9999
        assert sample.metric and sample.series
