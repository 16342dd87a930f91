"""Repeated identical requests reuse their answer, but never past a change of the route."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from agent_sandbox.extproc import processor
from agent_sandbox.extproc.activity import ActivityTracker
from agent_sandbox.extproc.decision import Decider, Policy
from agent_sandbox.extproc.keys import KeyIndex
from agent_sandbox.extproc.processor import ExtProcHandler
from agent_sandbox.extproc.resolver import Resolver
from agent_sandbox.extproc.routes import PodView, RouteTable

SID = "home-01jc3k5m7n9p2q4r6s8t0v1w2x"


def message(sid: str = SID, port: str = "49983", path: str = "/process.Process/Start") -> bytes:
    headers = [(":path", path), ("e2b-sandbox-id", sid), ("e2b-sandbox-port", port)]
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key=k, raw_value=v.encode()) for k, v in headers]))).SerializeToString()


def answer(handler: ExtProcHandler, data: bytes) -> ep.ProcessingResponse:
    result = handler.handle(data)
    assert isinstance(result, tuple) and result[1]
    return ep.ProcessingResponse.FromString(result[0])


def dst(response: ep.ProcessingResponse) -> str:
    return response.request_headers.response.header_mutation.set_headers[0].header.raw_value.decode()


def setup(policy: Policy | None = None) -> tuple[ExtProcHandler, RouteTable, ActivityTracker]:
    routes, activity = RouteTable(), ActivityTracker()
    routes.upsert_pod(PodView("ns", "p", "10.0.0.7", "running", SID, running=True))
    return ExtProcHandler(Decider(routes, activity, policy or Policy()), Resolver()), routes, activity


def test_a_repeated_request_is_answered_from_the_cache_and_still_counts_as_activity() -> None:
    handler, _, activity = setup()
    first = answer(handler, message())
    assert dst(first) == "10.0.0.7:49983" and len(handler._routed) == 1
    activity.touch(SID, 0)
    assert answer(handler, message()) == first
    assert (activity.get(SID) or 0) > 0


def test_an_evicted_or_moved_sandbox_is_never_answered_from_the_cache() -> None:
    handler, routes, _ = setup()
    answer(handler, message())
    routes.upsert_pod(PodView("ns", "p", "10.0.0.9", "running", SID, running=True))  # new pod IP
    assert dst(answer(handler, message())) == "10.0.0.9:49983"
    routes.evict(SID, now=0)
    stopped = answer(handler, message())
    assert stopped.immediate_response.status.code == 502
    assert b"was not found" in stopped.immediate_response.body


def test_cache_is_bounded_and_skipped_when_api_keys_are_checked() -> None:
    handler, _, _ = setup()
    for i in range(processor.ROUTED_CACHE_SIZE + 10):
        answer(handler, message(path=f"/files?path={i}"))
    assert len(handler._routed) == processor.ROUTED_CACHE_SIZE
    keyed, _, _ = setup(Policy(keys=KeyIndex("admin-key")))
    data = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key="x-api-key", raw_value=b"admin-key"),
        HeaderValue(key="e2b-sandbox-id", raw_value=SID.encode())]))).SerializeToString()
    assert dst(answer(keyed, data)) == "10.0.0.7:49983" and not keyed._routed
