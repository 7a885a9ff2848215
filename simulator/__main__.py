"""``python -m simulator``: serve the WhatsApp simulator until interrupted."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Optional, Sequence

from aiohttp import web

from .app import create_app
from .config import SimulatorConfig, config_from_args


async def serve(config: SimulatorConfig) -> None:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    # One parseable line: tests (and humans) learn the real port, also with --port 0.
    print(f"WhatsApp simulator listening on http://{host}:{port}/ "
          f"(webhooks -> {config.webhook_url})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = config_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
