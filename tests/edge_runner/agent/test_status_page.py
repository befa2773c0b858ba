"""The device's local status page against a real engine child: what it shows (active snapshot,
engine state, red nodes with their text, last errors), that it is read-only, escapes what it
shows, runs no scripts and refuses foreign Host names (RELIABILITY.md family 33)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from edge_runner.agent.status_page import StatusPage, device_status
from tests.edge_runner.agent.test_apply import gen_flow, later, start_device, stop_device

RED = "node.status({'fill': 'red', 'shape': 'ring', 'text': 'PLC <unreachable>'})\nreturn msg"
ERROR = "node.error('bad reading & co')\nreturn msg"


async def test_the_page_shows_the_device_and_refuses_what_is_not_a_read(tmp_path: Path) -> None:
    device = await start_device(tmp_path / "root")
    watch = device.applier.watch
    events = asyncio.get_running_loop().create_task(device.client.subscribe(watch.on_event))
    page = StatusPage(
        lambda: device_status(device.applier, link="offline", device_name="press <3>")
    )
    port = await page.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        flows = gen_flow(1, [*later(RED, 0.1), *later(ERROR, 0.1)])
        flows[-1]["id"], flows[-2]["id"] = "efn", "ein"
        flows[-2]["wires"] = [["efn"]]
        assert (await device.apply(1, flows=flows)).outcome == "applied"
        t0 = time.perf_counter()
        while not (watch.errors and any(e["node"] == "efn" for e in watch.errors)):
            assert time.perf_counter() - t0 < 10, list(watch.errors)
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/status.json") as r:
                assert r.status == 200
                doc = await r.json()
            assert doc["device"] == "press <3>"
            assert doc["link"] == "offline"
            assert doc["active"] == {"generation": 1, "name": "v1"}
            assert doc["engine"]["state"] == "start"
            assert doc["engine"]["restarts"] == 0
            [flow] = doc["flows"]
            assert flow["label"] == "line 1"
            assert flow["status"] == {"red": 1}
            red = {"id": "lfn", "name": "python-function", "text": "PLC <unreachable>"}
            assert flow["red"] == [red]
            assert any(e["message"] == "bad reading & co" for e in doc["errors"])

            async with http.get(f"{base}/") as r:
                assert r.status == 200
                assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
                text = await r.text()
            assert '<meta http-equiv="refresh" content="5">' in text
            assert "<script" not in text.lower()
            assert "press &lt;3&gt;" in text
            assert "press <3>" not in text
            assert "v1 (generation 1)" in text
            assert "PLC &lt;unreachable&gt;" in text
            assert "bad reading &amp; co" in text

            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                async with http.request(method, f"{base}/status.json", json={}) as r:
                    assert r.status == 405, method
                    assert (await r.json())["code"] == "method_not_allowed"
            async with http.get(f"{base}/flows") as r:
                assert r.status == 404
            for host in ("evil.example", "evil.example:80", "192.168.1.5", ""):
                async with http.get(f"{base}/", headers={"Host": host}) as r:
                    assert r.status == 421, host
                    assert (await r.json())["code"] == "host_not_allowed"
            async with http.get(f"{base}/", headers={"Host": f"localhost:{port}"}) as r:
                assert r.status == 200
    finally:
        events.cancel()
        await page.stop()
        await stop_device(device)
