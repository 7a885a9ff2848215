"""The marketing half: the campaign sender (`python -m marketing.sender`) and the send
budget it shares with other senders. May import shop and connectors.graph_api; shop
never imports it."""
