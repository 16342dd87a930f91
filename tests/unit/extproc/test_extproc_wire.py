"""The hand-encoded ExtProc answers are what Envoy's generated parser reads."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from agent_sandbox.extproc.wire import headers_response, route_to

OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD


def expected(set_headers: list[tuple[str, bytes]], removed: list[str], clear: bool) -> bytes:
    return ep.ProcessingResponse(request_headers=ep.HeadersResponse(response=ep.CommonResponse(
        header_mutation=ep.HeaderMutation(
            set_headers=[HeaderValueOption(header=HeaderValue(key=k, raw_value=v), append_action=OVERWRITE)
                         for k, v in set_headers],
            remove_headers=removed),
        clear_route_cache=clear))).SerializeToString()


def test_route_answer_matches_the_generated_encoding() -> None:
    assert route_to("10.1.2.3:49983") == expected([("x-agentsandbox-dst", b"10.1.2.3:49983")], [], False)
    assert route_to("10.1.2.3:49983") is route_to("10.1.2.3:49983")  # cached


def test_mutation_with_rewrite_removals_and_long_values_round_trips() -> None:
    long_path = "/files?path=" + "x" * 300  # a length that needs a two-byte varint
    sets = [("x-agentsandbox-dst", "[fd00::1]:8080"), (":path", long_path), ("x-gw", "price €"), ("x-raw", "caf\xe9")]
    removed = ["x-agentsandbox-cross-cluster", "x-agentsandbox-upstream-host"]
    data = headers_response(sets, removed, True)
    assert data == expected([(k, v.encode("latin-1") if k != "x-gw" else v.encode()) for k, v in sets],
                            removed, True)
    parsed = ep.ProcessingResponse.FromString(data).request_headers.response
    assert parsed.clear_route_cache and list(parsed.header_mutation.remove_headers) == removed
    assert parsed.header_mutation.set_headers[1].header.raw_value == long_path.encode()
