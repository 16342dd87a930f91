"""Sandbox ids: format, ordering, parsing and rejection of malformed input."""

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_sandbox.common.ids import (
    MAX_CLUSTER_ID_LEN,
    MAX_SANDBOX_ID_LEN,
    InvalidSandboxId,
    is_sandbox_id,
    new_sandbox_id,
    parse_sandbox_id,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def test_new_id_is_dns_label_and_carries_cluster():
    sid = new_sandbox_id("us-east-1")
    assert DNS_LABEL.match(sid)
    assert len(sid) <= MAX_SANDBOX_ID_LEN
    parsed = parse_sandbox_id(sid)
    assert parsed.cluster_id == "us-east-1"
    assert str(parsed) == sid
    # It fits the E2B host label "<port>-<id>" (63 characters at most).
    assert len(f"49983-{sid}") <= 63


def test_ids_are_time_ordered_and_unique():
    ids = []
    for _ in range(50):
        ids.append(new_sandbox_id("c1"))
        time.sleep(0.001)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert parse_sandbox_id(ids[0]).created_at <= parse_sandbox_id(ids[-1]).created_at


def test_longest_cluster_id_fits():
    cluster = "a" * MAX_CLUSTER_ID_LEN
    sid = new_sandbox_id(cluster)
    assert len(sid) == MAX_SANDBOX_ID_LEN
    with pytest.raises(InvalidSandboxId):
        new_sandbox_id(cluster + "a")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nocluster",
        "-01jd5x8m3k7q9r2t4v6w8y0z1a",
        "C1-01jd5x8m3k7q9r2t4v6w8y0z1a",  # upper case cluster
        "c1-01JD5X8M3K7Q9R2T4V6W8Y0Z1A",  # upper case local id
        "c1-01jd5x8m3k7q9r2t4v6w8y0z1",  # 25 chars
        "c1_01jd5x8m3k7q9r2t4v6w8y0z1a",
        "c1-01jd5x8m3k7q9r2t4v6w8y0zia",  # 'i' is not Crockford base32
        "c1--01jd5x8m3k7q9r2t4v6w8y0z1a",  # cluster ends with '-'
        "x" * 60,
    ],
)
def test_malformed_ids_rejected(bad):
    assert not is_sandbox_id(bad)
    with pytest.raises(InvalidSandboxId):
        parse_sandbox_id(bad)


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,19}[a-z0-9])?", fullmatch=True))
def test_roundtrip_for_any_valid_cluster(cluster):
    sid = new_sandbox_id(cluster)
    assert parse_sandbox_id(sid).cluster_id == cluster
