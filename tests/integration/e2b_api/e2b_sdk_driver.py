"""Drive the E2B control plane with the real E2B SDK; runs inside a per-version SDK venv.

Usage: ``python e2b_sdk_driver.py TEMPLATE`` with ``E2B_API_URL`` (our E2B port), ``E2B_SANDBOX_URL``
(the data plane) and ``E2B_API_KEY`` set; prints one JSON object of observations.
``python e2b_sdk_driver.py cross TEMPLATE`` only drives the control plane (create, get, kill, and a
create naming an unknown cluster), for cross-cluster forwarding where no sandbox is entered. Exceptions are
recorded by class name so a test checks which SDK error a user would see. Only stdlib + ``e2b``.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version

from e2b import Sandbox

VERSION = version("e2b")


def error_name(fn, *args, **kwargs) -> str | None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__
    return None


def listed_ids(tag: str, **filters) -> dict:
    from e2b import SandboxQuery

    query = SandboxQuery(metadata={"suite": tag}, **filters)
    if "limit" in inspect.signature(Sandbox.list).parameters:
        paginator = Sandbox.list(query=query, limit=1)
        ids, pages = [], 0
        while paginator.has_next:
            ids += [s.sandbox_id for s in paginator.next_items()]
            pages += 1
        return {"ids": sorted(ids), "pages": pages, "paginated": True}
    return {"ids": sorted(s.sandbox_id for s in Sandbox.list(query=query)), "pages": 1, "paginated": False}


def main(template: str) -> dict:
    out: dict = {}
    tag = "sdk-" + VERSION.replace(".", "-")
    sbx = Sandbox.create(template=template, envs={"FROM_CREATE": "yes"}, metadata={"suite": tag}, timeout=120)
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    other = Sandbox.create(template=template, metadata={"suite": tag, "n": "2"})
    try:
        out["run"] = sbx.commands.run("echo $FROM_CREATE; whoami").stdout
        sbx.files.write(f"/home/user/{tag}.txt", "from the sdk")
        out["read"] = sbx.files.read(f"/home/user/{tag}.txt")
        out["listed_files"] = f"{tag}.txt" in [e.name for e in sbx.files.list("/home/user")]
        sbx.set_timeout(600)
        info = sbx.get_info()
        out["info"] = {"same_id": info.sandbox_id == sbx.sandbox_id, "template": info.template_id,
                       "suite": (info.metadata or {}).get("suite"),
                       "ttl": round((info.end_at - datetime.now(UTC)).total_seconds())}
        if hasattr(sbx, "get_metrics"):
            metrics = sbx.get_metrics()
            out["metrics"] = bool(metrics) and metrics[0].mem_total > 0
        out["list"] = listed_ids(tag)
        from e2b import SandboxQuery

        if {"template", "started_after"} <= set(getattr(SandboxQuery, "__dataclass_fields__", {})):
            out["filtered"] = {"template": listed_ids(tag, template=template)["ids"],
                               "other_template": listed_ids(tag, template="no-such-pool")["ids"],
                               "started_after": listed_ids(tag, started_after=between)["ids"],
                               "other_id": other.sandbox_id}
        out["expected_ids"] = sorted([sbx.sandbox_id, other.sandbox_id])
    finally:
        out["kill"] = sbx.kill()
        other.kill()
    out["kill_again"] = Sandbox.kill(sbx.sandbox_id)
    # The data plane keeps routing a sandbox while its pod recycles; it must stop within seconds.
    started = time.monotonic()
    while sbx.is_running() and time.monotonic() - started < 10:
        time.sleep(0.1)
    out["is_running"] = sbx.is_running()
    out["running_after_kill_s"] = round(time.monotonic() - started, 2)
    out["get_info_after_kill"] = error_name(Sandbox.get_info, sbx.sandbox_id)
    out["connect_after_kill"] = error_name(Sandbox.connect, sbx.sandbox_id)
    out["list_after_kill"] = listed_ids(tag)["ids"]
    if "idempotency_key" in inspect.signature(Sandbox.create).parameters:
        first = Sandbox.create(template=template, idempotency_key=tag)
        second = Sandbox.create(template=template, idempotency_key=tag)
        out["idempotent"] = first.sandbox_id == second.sandbox_id
        first.kill()
    out["bad_template"] = error_name(Sandbox.create, template="no-such-pool")
    return out


def cross(template: str) -> dict:
    sbx = Sandbox.create(template=template, metadata={"via": "forwarding"}, timeout=120)
    info = Sandbox.get_info(sbx.sandbox_id)
    out: dict = {"id": sbx.sandbox_id, "template": info.template_id, "via": (info.metadata or {}).get("via")}
    out["kill"] = Sandbox.kill(sbx.sandbox_id)
    out["kill_again"] = Sandbox.kill(sbx.sandbox_id)
    out["get_info_after_kill"] = error_name(Sandbox.get_info, sbx.sandbox_id)
    out["unknown_cluster"] = error_name(Sandbox.create, template="nowhere::" + template.partition("::")[2])
    return out


if __name__ == "__main__":
    result = cross(sys.argv[2]) if sys.argv[1] == "cross" else main(sys.argv[1])
    print(json.dumps(result), flush=True)
    os._exit(0)  # some SDK versions' native HTTP client aborts in interpreter teardown
