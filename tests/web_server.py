"""The web layer's pages without Rasa, for the API and browser tests: a Sanic app with the
campaigns page and its API on a blueprint at /webhooks/desk (as Rasa mounts the desk),
on the shop database SHOP_DB_URL.

    python -m tests.web_server PORT
"""
import os
import sys

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

from sanic import Blueprint, Sanic  # noqa: E402

from shop.db import get_database  # noqa: E402
from web import campaigns  # noqa: E402


def app() -> Sanic:
    server = Sanic("web_test_server")
    desk = Blueprint("desk", url_prefix="/webhooks/desk")
    campaigns.add_routes(desk, lambda request: get_database())
    server.blueprint(desk)
    return server


if __name__ == "__main__":
    app().run(host="127.0.0.1", port=int(sys.argv[1]), access_log=False, workers=1)
