"""Plug-ins of the action server: rasa-sdk 3.6 imports a package of this name if there is
one (`rasa_sdk.plugin`) and calls `init_hooks`. This one adds `GET /metrics`, the
Prometheus metrics of the actions (consent changes) and, in multiprocess mode, of every
process writing to the same PROMETHEUS_MULTIPROC_DIR (README, "Monitoring")."""
import asyncio
from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("rasa_sdk")


class MetricsRoute:
    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        from sanic import response

        from connectors import metrics

        async def metrics_page(_: Any) -> Any:
            # Reads files in multiprocess mode: off the event loop.
            body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition)
            return response.raw(body, content_type=metrics.CONTENT_TYPE)

        app.add_route(metrics_page, metrics.PATH, methods=["GET"], name="metrics")


def init_hooks(manager: pluggy.PluginManager) -> None:
    manager.register(MetricsRoute())
