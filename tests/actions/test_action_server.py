"""The action server (`rasa run actions --actions actions`) registers the catalog and
product actions under their domain names, and nothing it cannot name."""
from rasa_sdk.executor import ActionExecutor

from tests.actions.support import DOMAIN

CATALOG_ACTIONS = {"action_browse_catalog", "action_product_info", "action_product_price", "action_product_availability"}


def test_the_action_server_registers_the_actions() -> None:
    executor = ActionExecutor()
    executor.register_package("actions")  # fails if any Action subclass has no name
    assert CATALOG_ACTIONS <= set(executor.actions)
    assert CATALOG_ACTIONS <= set(DOMAIN["actions"])
