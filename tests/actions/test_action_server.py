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


# The small bot of the channel's end-to-end tests (tests/e2e_bot) runs these actions of the
# shop: it needs the responses they send, as the shop has them.
E2E_BOT_RESPONSES = (
    "utter_browse_categories", "utter_browse_unknown_category", "utter_browse_category", "utter_product_list",
    "utter_product_list_next", "utter_handoff_requested", "utter_handoff_away", "utter_opted_out", "utter_resubscribed",
)


def test_the_end_to_end_bot_has_the_responses_of_the_shop_actions_it_runs() -> None:
    from ruamel.yaml import YAML

    from tests.actions.support import ROOT

    e2e = YAML(typ="safe").load((ROOT / "tests" / "e2e_bot" / "domain.yml").read_text(encoding="utf-8"))
    for name in E2E_BOT_RESPONSES:
        assert e2e["responses"].get(name) == DOMAIN["responses"][name], name
