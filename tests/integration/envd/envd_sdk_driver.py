"""Drive envd with the real E2B SDK; runs inside a per-version SDK venv, prints one JSON line.

Usage: ``python envd_sdk_driver.py SCENARIO[,SCENARIO...]`` with ``E2B_API_URL``/``E2B_SANDBOX_URL``
pointing at the fake control plane and envd; prints ``{scenario: observations}``. Every observation a test asserts on
goes into the printed JSON object; exceptions are recorded by class name, so a
test can check which SDK error the user would see. Only stdlib + ``e2b`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version

from e2b import AsyncSandbox, Sandbox

SDK = tuple(int(p) for p in version("e2b").split(".")[:2])
# Every SDK version shares one envd in the tests: keep each run's files apart.
BASE = f"/home/user/sdk-{version('e2b')}"


def error_name(fn, *args, **kwargs) -> str | None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__
    return None


def commands(sbx: Sandbox) -> dict:
    out: dict = {}
    r = sbx.commands.run("echo hello; echo oops >&2")
    out["echo"] = {"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code}
    try:
        sbx.commands.run("exit 3")
        out["nonzero"] = None
    except Exception as exc:
        out["nonzero"] = {"type": type(exc).__name__, "exit_code": getattr(exc, "exit_code", None)}
    out["env"] = sbx.commands.run("echo $FROM_CREATE-$FROM_RUN", envs={"FROM_RUN": "r"}).stdout.strip()
    out["cwd"] = sbx.commands.run("pwd", cwd="/tmp").stdout.strip()
    out["default_cwd"] = sbx.commands.run("pwd").stdout.strip()
    out["whoami"] = sbx.commands.run("whoami").stdout.strip()
    out["whoami_root"] = sbx.commands.run("whoami", user="root").stdout.strip()
    out["utf8_split"] = sbx.commands.run("printf '\\xc3'; sleep 0.2; printf '\\xa9\\n'").stdout

    bg = sbx.commands.run("sleep 30", background=True)
    out["bg_listed"] = bg.pid in [p.pid for p in sbx.commands.list()]
    bg.disconnect()
    time.sleep(0.3)
    out["bg_alive_after_disconnect"] = bg.pid in [p.pid for p in sbx.commands.list()]
    out["kill"] = sbx.commands.kill(bg.pid)
    time.sleep(0.3)
    out["bg_gone_after_kill"] = bg.pid not in [p.pid for p in sbx.commands.list()]
    out["kill_missing"] = sbx.commands.kill(999999)

    cat = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.send_stdin(cat.pid, "from stdin\n")
    if hasattr(sbx.commands, "close_stdin"):
        sbx.commands.close_stdin(cat.pid)
        out["stdin"] = cat.wait().stdout
    else:
        time.sleep(0.3)
        sbx.commands.kill(cat.pid)
        try:
            cat.wait()
        except Exception as exc:
            out["stdin"] = getattr(exc, "stdout", "")

    started = time.monotonic()
    try:
        sbx.commands.run("sleep 30; echo late", timeout=1)
        out["timeout"] = None
    except Exception as exc:
        out["timeout"] = type(exc).__name__
    out["timeout_elapsed"] = round(time.monotonic() - started, 2)
    time.sleep(0.5)
    out["timeout_killed"] = not any("sleep 30; echo late" in " ".join(p.args) for p in sbx.commands.list())
    return out


def pty(sbx: Sandbox) -> dict:
    from e2b import PtySize

    chunks: list[bytes] = []
    handle = sbx.pty.create(PtySize(rows=24, cols=80), on_data=chunks.append) if "on_data" in inspect.signature(
        sbx.pty.create).parameters else sbx.pty.create(PtySize(rows=24, cols=80))
    sbx.pty.send_stdin(handle.pid, b"stty size; echo pty-$((40+2))\n")
    time.sleep(0.5)
    sbx.pty.resize(handle.pid, PtySize(rows=30, cols=100))
    sbx.pty.send_stdin(handle.pid, b"stty size\n")
    time.sleep(0.5)
    killed = sbx.pty.kill(handle.pid)
    # The stream ends with an error once the PTY is killed; the output read before is what counts.
    with contextlib.suppress(Exception):
        if chunks:
            handle.wait()
        else:
            for _, _, pty_data in handle:
                if pty_data:
                    chunks.append(pty_data)
    text = b"".join(chunks).decode(errors="replace")
    return {"output_has_result": "pty-42" in text, "initial_size": "24 80" in text,
            "resized": "30 100" in text, "killed": killed}


def files(sbx: Sandbox) -> dict:
    out: dict = {}
    info = sbx.files.write(f"{BASE}/dir/a.txt", "hello file")
    out["write_path"] = info.path
    out["read_text"] = sbx.files.read(f"{BASE}/dir/a.txt")
    sbx.files.write(f"sdk-{version('e2b')}/rel.bin", b"\x00\x01\xff")
    out["read_bytes"] = list(sbx.files.read(f"{BASE}/rel.bin", format="bytes"))
    stream = sbx.files.read(f"{BASE}/dir/a.txt", format="stream")
    out["read_stream"] = b"".join(stream).decode()
    out["owner"] = sbx.files.get_info(f"{BASE}/dir/a.txt").owner
    sbx.files.write(f"{BASE}/root-owned.txt", "r", user="root")
    out["owner_as_root"] = sbx.files.get_info(f"{BASE}/root-owned.txt").owner
    sbx.files.make_dir(f"{BASE}/dir/sub/deeper")
    sbx.files.write(f"{BASE}/dir/sub/deeper/z.txt", "z")
    out["list_1"] = sorted(e.name for e in sbx.files.list(f"{BASE}/dir"))
    out["list_3"] = sorted(e.path for e in sbx.files.list(f"{BASE}/dir", depth=3))
    entry = sbx.files.get_info(f"{BASE}/dir/a.txt")
    out["info"] = {"name": entry.name, "type": str(entry.type.value if entry.type else None), "size": entry.size}
    out["exists"] = [sbx.files.exists(f"{BASE}/dir/a.txt"), sbx.files.exists(f"{BASE}/nope")]
    out["make_dir"] = [sbx.files.make_dir(f"{BASE}/newdir"), sbx.files.make_dir(f"{BASE}/newdir")]
    sbx.files.rename(f"{BASE}/dir/a.txt", f"{BASE}/dir/b.txt")
    out["after_rename"] = [sbx.files.exists(f"{BASE}/dir/a.txt"), sbx.files.exists(f"{BASE}/dir/b.txt")]
    sbx.files.remove(f"{BASE}/dir/b.txt")
    out["after_remove"] = sbx.files.exists(f"{BASE}/dir/b.txt")

    if SDK >= (2, 40):
        sbx.files.write(f"{BASE}/gz.txt", io.BytesIO(b"compressed upload"), gzip=True)
        out["gzip_roundtrip"] = sbx.files.read(f"{BASE}/gz.txt")
    sbx.files.write(f"{BASE}/stream.txt", io.BytesIO(b"file-like upload"))
    out["stream_roundtrip"] = sbx.files.read(f"{BASE}/stream.txt")
    if hasattr(sbx, "download_url"):
        with urllib.request.urlopen(sbx.download_url(f"{BASE}/stream.txt"), timeout=10) as resp:
            out["signed_download"] = resp.read().decode()
        upload = urllib.request.Request(
            sbx.upload_url(f"{BASE}/signed.txt"), method="POST", data=b"signed upload",
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(upload, timeout=10):
            pass
        out["signed_upload"] = sbx.files.read(f"{BASE}/signed.txt")
        tampered = sbx.download_url(f"{BASE}/stream.txt").replace("signature=v1_", "signature=v1_x")
        try:
            urllib.request.urlopen(tampered, timeout=10)
            out["tampered_download"] = 200
        except urllib.error.HTTPError as exc:
            out["tampered_download"] = exc.code

    watch = sbx.files.watch_dir(f"{BASE}/newdir")
    sbx.files.write(f"{BASE}/newdir/w.txt", "w")
    time.sleep(0.3)
    events = watch.get_new_events()
    watch.stop()
    out["watch"] = sorted({(e.name, e.type.value) for e in events})
    return out


def errors(sbx: Sandbox) -> dict:
    return {
        "read_missing": error_name(sbx.files.read, "/home/user/missing.txt"),
        "list_missing": error_name(sbx.files.list, "/home/user/missing-dir"),
        "info_missing": error_name(sbx.files.get_info, "/home/user/missing.txt"),
        "bad_cwd": error_name(sbx.commands.run, "pwd", cwd="/does/not/exist"),
    }


def wrong_token() -> dict:
    sbx = Sandbox.create(metadata={"envdAccessToken": "wrong"}) if hasattr(Sandbox, "create") else Sandbox(
        metadata={"envdAccessToken": "wrong"})
    try:
        return {
            "run": error_name(sbx.commands.run, "true"),
            "read": error_name(sbx.files.read, "/etc/hostname"),
            "list": error_name(sbx.files.list, "/"),
        }
    finally:
        sbx.kill()


async def async_flow() -> dict:
    out: dict = {}
    sbx = await AsyncSandbox.create(envs={"FROM_CREATE": "async"})
    try:
        r = await sbx.commands.run("echo $FROM_CREATE")
        out["run"] = r.stdout.strip()
        try:
            await sbx.commands.run("exit 5")
        except Exception as exc:
            out["nonzero"] = [type(exc).__name__, getattr(exc, "exit_code", None)]
        await sbx.files.write(f"{BASE}/async.txt", "async data")
        out["read"] = await sbx.files.read(f"{BASE}/async.txt")
        out["list"] = sorted(e.name for e in await sbx.files.list(BASE))
        await sbx.files.make_dir(f"{BASE}/awatch")
        events: list = []
        handle = await sbx.files.watch_dir(f"{BASE}/awatch", on_event=events.append)
        await sbx.files.write(f"{BASE}/awatch/x.txt", "x")
        await asyncio.sleep(0.5)
        await handle.stop()
        out["watch"] = sorted({(e.name, e.type.value) for e in events})
        bg = await sbx.commands.run("sleep 20", background=True)
        out["kill"] = await sbx.commands.kill(bg.pid)
    finally:
        await sbx.kill()
    return out


def run_scenario(scenario: str) -> dict:
    if scenario == "async":
        return asyncio.run(async_flow())
    if scenario == "wrong_token":
        return wrong_token()
    sbx = Sandbox.create(envs={"FROM_CREATE": "c"}) if hasattr(Sandbox, "create") else Sandbox(
        envs={"FROM_CREATE": "c"})
    try:
        return {"commands": commands, "pty": pty, "files": files, "errors": errors}[scenario](sbx)
    finally:
        sbx.kill()


def main() -> None:
    print(json.dumps({scenario: run_scenario(scenario) for scenario in sys.argv[1].split(",")}), flush=True)
    # Skip interpreter teardown: some SDK versions' native HTTP client aborts in it
    # ("PyGILState_Release") after the results are complete.
    os._exit(0)


if __name__ == "__main__":
    main()
