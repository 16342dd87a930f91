"""Terminal client frames: stdin and resize ops, refusals with a reason."""

import pytest

from agent_sandbox.operator.api.envd_connect import envelope
from agent_sandbox.operator.terminal.messages import BadMessage, Resize, Stdin, parse_text


def test_stdin_and_resize_ops():
    assert parse_text('{"op": "stdin", "data": "ls\\n"}') == Stdin(b"ls\n")
    assert parse_text('{"op": "resize", "cols": 120, "rows": 40}') == Resize(120, 40)


@pytest.mark.parametrize(("text", "reason"), [
    ("ls", "JSON"),
    ("[1]", "JSON objects"),
    ('{"op": "nope"}', "unknown op"),
    ('{"op": "stdin", "data": 5}', "string"),
    ('{"op": "resize", "cols": 0, "rows": 10}', "cols"),
    ('{"op": "resize", "cols": 10, "rows": true}', "rows"),
    ('{"op": "resize", "cols": 10, "rows": 100000}', "rows"),
])
def test_refused_frames_say_why(text, reason):
    with pytest.raises(BadMessage, match=reason):
        parse_text(text)


def test_connect_envelope_framing():
    frame = envelope({"a": 1})
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == len(frame) - 5 and frame[5:] == b'{"a":1}'
