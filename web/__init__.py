"""The shop's web pages for people: the agent desk and the campaigns page.

One small layer under both, kept apart from the WhatsApp wire package (connectors/),
which imports nothing from here:

- `auth`: bearer tokens and roles (agent < marketing < admin; `SHOP_ADMIN_TOKEN` is an
  admin without a row in the agents table),
- `http`: JSON answers and errors, request bodies,
- `static_files`: the pages' files, from web/static/, without path tricks,
- `layout`: the shared shell of every page (head, navigation, common CSS),
- `chart`: server-drawn SVG charts (no chart library, nothing from a CDN).

The pages are served by the Rasa server as an input channel (`web.desk.AgentDesk` in
credentials.yml) at `/webhooks/desk/`: the desk at `/webhooks/desk/`, the campaigns
page at `/webhooks/desk/campaigns/`, their JSON under `/webhooks/desk/api/`.
"""
