"""A second process for the channel layer tests: sends, or receives and prints, then exits.

Run as ``python -m tests.config.layer_peer <db path> send-group <group> <count>`` or
``... receive <channel> <seconds>`` (prints one JSON line per message).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from channels.exceptions import ChannelFull

from apps.core.channel_layers import SQLiteChannelLayer


async def main(path: str, action: str, name: str, amount: str) -> None:
    layer = SQLiteChannelLayer(path=path, polling_interval=0.01, capacity=1000)
    if action == "send-group":
        for number in range(int(amount)):
            await layer.group_send(name, {"type": "test.message", "n": number, "t": time.time()})
    elif action == "send":
        for number in range(int(amount)):
            try:
                await layer.send(name, {"type": "test.message", "n": number})
            except ChannelFull:
                print(json.dumps({"full": number}), flush=True)
    elif action == "receive":
        deadline = time.monotonic() + float(amount)
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(name), timeout=left)
            except TimeoutError:
                break
            print(json.dumps(message), flush=True)
    else:
        raise SystemExit(f"unknown action {action!r}")
    await layer.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
