"""The numpy-built fixed-width texts equal what the per-value formatting gives; plain strings
are exactly those whose JSON text is themselves in quotes."""

from __future__ import annotations

import uuid

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from spotme_hub.normalize.texts import code_points_to_str, iso_seconds
from spotme_hub.record import plain_strings

# numpy's datetime64[s] range is far wider; this covers years -2000 to 12000, so the fallback
# outside 0000-9999 is taken too
SECONDS = st.integers(min_value=-125_000_000_000, max_value=316_000_000_000)


@given(st.lists(SECONDS, max_size=60), st.sampled_from(["", "Z", "+08:00"]))
def test_iso_seconds_is_numpys_text(seconds: list[int], suffix: str) -> None:
    arr = np.array(seconds, dtype=np.int64)
    want = [t + suffix for t in np.datetime_as_string(arr.astype("datetime64[s]"), unit="s")]
    assert iso_seconds(arr, suffix) == want


def test_iso_seconds_at_the_edges() -> None:
    edges = [-62167219200, -62167219201, 253402300799, 253402300800, 0, -1, 951868799, 951868800]
    arr = np.array(edges, dtype=np.int64)
    assert iso_seconds(arr[[4, 5, 6, 7]]) == [
        "1970-01-01T00:00:00", "1969-12-31T23:59:59", "2000-02-29T23:59:59", "2000-03-01T00:00:00",
    ]  # fmt: skip
    assert iso_seconds(arr) == np.datetime_as_string(arr.astype("datetime64[s]")).tolist()
    assert iso_seconds(np.array([], dtype=np.int64)) == []


@given(st.lists(st.uuids(), max_size=20))
def test_code_points_to_str(ids: list[uuid.UUID]) -> None:
    texts = [str(u) for u in ids]
    codes = np.array([[ord(c) for c in t] for t in texts], dtype=np.uint8).reshape(len(texts), 36)
    assert code_points_to_str(codes) == texts


@given(st.lists(st.one_of(st.text(max_size=8), st.integers(), st.none()), max_size=8))
def test_plain_strings_are_those_whose_json_is_themselves_in_quotes(values: list) -> None:
    # every plain string's JSON text is itself in quotes (and holds no control character,
    # such as the shapes' separator); printable ASCII without quotes or backslashes is plain
    as_is = all(type(v) is str and orjson.dumps(v).decode() == f'"{v}"' for v in values)
    printable = all(
        type(v) is str and all(" " <= c <= "~" and c not in '"\\' for c in v) for v in values
    )
    assert plain_strings(values) == printable
    assert as_is or not printable
