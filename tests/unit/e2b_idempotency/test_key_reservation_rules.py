"""Pure rules of the cluster-wide ``Idempotency-Key`` records: naming and what a duplicate does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from agent_sandbox.operator.e2b import key_reservations as kr
from agent_sandbox.operator.e2b.key_reservations import Entry, Verdict, decide, lease_name
from agent_sandbox.operator.timeutil import format_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def entry(*, fingerprint: str = "fp", inflight_s: float = 60, expires_s: float = 600,
          response: dict | None = None) -> Entry:
    return Entry(fingerprint=fingerprint, sandbox_id="it-01jc0000000000000000000000",
                 inflight_until=NOW + timedelta(seconds=inflight_s), expires_at=NOW + timedelta(seconds=expires_s),
                 response=response)


def test_a_duplicate_waits_for_an_attempt_in_flight() -> None:
    assert decide(entry(), "fp", NOW) is Verdict.WAIT


def test_a_finished_attempt_is_replayed_even_past_its_in_flight_bound() -> None:
    assert decide(entry(response={"sandboxID": "x"}, inflight_s=-5), "fp", NOW) is Verdict.DONE


def test_a_different_request_under_the_same_key_is_a_mismatch_until_the_record_expires() -> None:
    assert decide(entry(response={"sandboxID": "x"}), "other", NOW) is Verdict.MISMATCH
    assert decide(entry(), "other", NOW) is Verdict.MISMATCH
    assert decide(entry(expires_s=-1), "other", NOW) is Verdict.EXPIRED


def test_an_attempt_past_its_in_flight_bound_is_abandoned() -> None:
    assert decide(entry(inflight_s=0), "fp", NOW) is Verdict.ABANDONED


@pytest.mark.parametrize("annotations", [
    {},
    {kr.ANN_FINGERPRINT: "fp", kr.ANN_EXPIRES_AT: "not a time"},
    {kr.ANN_FINGERPRINT: "fp", kr.ANN_EXPIRES_AT: format_time(NOW - timedelta(seconds=1))},
])
def test_an_unreadable_or_expired_record_never_blocks_the_key(annotations: dict) -> None:
    assert decide(Entry.of({"metadata": {"annotations": annotations}}), "fp", NOW) is Verdict.EXPIRED


def test_a_record_is_read_back_from_its_annotations() -> None:
    lease = {"metadata": {"annotations": {
        kr.ANN_FINGERPRINT: "fp", kr.ANN_SANDBOX_ID: "it-x", kr.ANN_INFLIGHT_UNTIL: format_time(NOW),
        kr.ANN_EXPIRES_AT: format_time(NOW + timedelta(minutes=10)),
        kr.ANN_RESPONSE: orjson.dumps({"sandboxID": "it-x"}).decode()}}}
    got = Entry.of(lease)
    assert (got.fingerprint, got.sandbox_id, got.response) == ("fp", "it-x", {"sandboxID": "it-x"})
    assert got.inflight_until == NOW
    assert Entry.of({"metadata": {"annotations": {kr.ANN_RESPONSE: "{broken"}}}).response is None


def test_record_names_are_stable_dns_labels_that_hide_the_key() -> None:
    name = lease_name(b"secret", "default/red/alice", "job-42")
    assert name == lease_name(b"secret", "default/red/alice", "job-42"), "every replica derives the same name"
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert "job-42" not in name and "alice" not in name
    assert len({name, lease_name(b"secret", "default/red/bob", "job-42"),
                lease_name(b"secret", "default/red/alice", "job-43"),
                lease_name(b"other", "default/red/alice", "job-42")}) == 4


def test_the_in_flight_bound_must_be_shorter_than_the_record_lifetime() -> None:
    with pytest.raises(ValueError, match="inflight_s"):
        kr.KeyReservations(None, "ns", b"s", ttl_s=60, inflight_s=60)  # type: ignore[arg-type]
