"""Our minimal HTTP/2 gRPC server, driven by an independent HTTP/2 + gRPC implementation (grpcio)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorStub
from extproc_stack import free_port

from agent_sandbox.extproc.activity import ActivityTracker
from agent_sandbox.extproc.decision import Decider, Policy
from agent_sandbox.extproc.h2grpc import start_server
from agent_sandbox.extproc.processor import ExtProcHandler
from agent_sandbox.extproc.resolver import Resolver
from agent_sandbox.extproc.routes import PodView, RouteTable

SID = "home-01jc3k5m7n9p2q4r6s8t0v1w2x"
TOKEN = "envoy-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def headers_request(**headers: str) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key=k.replace("_", "-"), raw_value=v.encode()) for k, v in headers.items()])))


@pytest.fixture
async def target() -> AsyncIterator[str]:
    routes = RouteTable()
    routes.upsert_pod(PodView("ns", "p", "10.0.0.9", "running", SID, running=True))
    handler = ExtProcHandler(Decider(routes, ActivityTracker(), Policy()), Resolver())
    port = free_port()
    server, goaway = await start_server(handler, "127.0.0.1", port, reuse_port=False, token=TOKEN)
    yield f"127.0.0.1:{port}"
    goaway()
    server.close()
    await server.wait_closed()


async def process(stub: ExternalProcessorStub, request: ep.ProcessingRequest) -> list[ep.ProcessingResponse]:
    call = stub.Process(iter([request]), metadata=AUTH)
    return [r async for r in call]


async def test_route_and_reject_over_real_grpc(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ExternalProcessorStub(channel)
        [resp] = await process(stub, headers_request(x_sandbox_id=SID, x_sandbox_port="8080"))
        mutation = resp.request_headers.response.header_mutation
        assert [(h.header.key, h.header.raw_value) for h in mutation.set_headers] == [
            ("x-agentsandbox-dst", b"10.0.0.9:8080")]
        [resp] = await process(stub, headers_request(e2b_sandbox_id="home-01jc3k5m7n9p2q4r6s8t0v1w2y"))
        assert resp.immediate_response.status.code == 502
        assert b"was not found" in resp.immediate_response.body


async def test_many_concurrent_streams_and_large_headers(target: str) -> None:
    """Thousands of streams exceed every initial flow-control window; big header sets span frames."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ExternalProcessorStub(channel)
        big = "v" * 40_000
        results = await asyncio.gather(*(
            process(stub, headers_request(x_sandbox_id=SID, x_sandbox_port=str(1000 + i % 50), x_big=big))
            for i in range(300)
        ))
        for i, [resp] in enumerate(results):
            value = resp.request_headers.response.header_mutation.set_headers[0].header.raw_value
            assert value == f"10.0.0.9:{1000 + i % 50}".encode()
        for _ in range(3):
            rounds = await asyncio.gather(*(process(stub, headers_request(x_sandbox_id=SID, x_sandbox_port="1"))
                                            for _ in range(500)))
            assert all(len(r) == 1 for r in rounds)


async def test_unknown_method_is_unimplemented(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/some.Service/Method")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"", timeout=5, metadata=AUTH)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_callers_without_envoys_token_are_refused(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ExternalProcessorStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            call = stub.Process(iter([headers_request(x_sandbox_id=SID, x_sandbox_port="1")]), metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                [r async for r in call]
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
