"""One exception renders as the native and the E2B error shapes."""

from agent_sandbox.common.errors import ApiError, bad_request, not_found


def test_native_and_e2b_bodies():
    err = not_found("sandbox c1-x not found", detail={"hint": "GET /v1/sandboxes"})
    assert err.status == 404
    assert err.body() == {"error": "sandbox c1-x not found", "errorCode": "NotFound",
                          "detail": {"hint": "GET /v1/sandboxes"}}
    assert err.e2b_body() == {"code": 404, "message": "sandbox c1-x not found"}


def test_optional_fields_omitted():
    assert ApiError(500, "boom").body() == {"error": "boom"}
    assert bad_request("bad").body() == {"error": "bad", "errorCode": "BadRequest"}
