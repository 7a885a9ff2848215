"""The agent desk: people answer the chats the bot handed off, by label.

A Rasa input channel of its own, served by the bot's Sanic app at `/webhooks/desk/`
(a web page) and `/webhooks/desk/api/` (JSON); the campaigns page (web/campaigns.py) is
served with it, at `/webhooks/desk/campaigns/`. `credentials.yml`:

    web.desk.AgentDesk:
      quick_replies: quick_replies.yml

(its canned answers, and the names of the templates agents may send, whose texts are
templates.yml's: web/desk_templates.py).

Agents authenticate with `Authorization: Bearer <token>` (web/auth.py; tokens are made
with `python -m shop agent add NAME --labels "customer support,returns"`, or the admin
token SHOP_ADMIN_TOKEN); an agent sees and answers only chats whose label they serve. Replies go out through the WhatsApp channel,
which enforces the 24-hour window; conversation changes (the agent's messages, the return
to the bot) are made where Rasa's processing runs, on the WhatsApp channel's dispatcher.
"""
import asyncio
import logging
import re
import time
from functools import wraps
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Sequence, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from ruamel.yaml import YAML
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors import wire
from connectors.graph_api import GraphApiError
from connectors.outbound import Deferred, OutsideWindow
from connectors.whatsapp import WhatsAppInput
from shop import agents, contacts, handoffs, i18n, messages, templates
from shop.agents import Agent
from web import auth, campaigns, desk_templates, layout, static_files
from web.http import HttpError, from_exception
from web.http import error as _error

logger = logging.getLogger(__name__)

PAGE = static_files.ROOT / "desk"
MEDIA_ID = re.compile(r"[0-9]{1,32}")  # WhatsApp media ids are digits
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class AgentDesk(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "desk"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        path = Path((credentials or {}).get("quick_replies") or "quick_replies.yml")
        if not path.is_absolute() and not path.exists():  # relative to the project, like credentials.yml
            path = PROJECT_ROOT / path
        if not path.exists():
            raise ValueError(f"agent desk: quick replies file {path} not found (credentials: web.desk.AgentDesk.quick_replies)")
        return cls(YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}, templates.load())

    def __init__(self, config: Dict[str, Any], variants: Sequence[templates.Template] = ()) -> None:
        """`config`: quick_replies.yml; `variants`: templates.yml's, of which the desk
        offers those `config["templates"]` names (web/desk_templates.py)."""
        self.quick_replies: List[Dict[str, Any]] = list(config.get("quick_replies") or [])
        self.templates: List[templates.Template] = desk_templates.offered(config.get("templates"), variants)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        desk = Blueprint("agent_desk", __name__)

        @desk.get("/static/<name:path>")
        async def static(_: Request, name: str) -> HTTPResponse:
            return await static_files.serve((PAGE, static_files.COMMON), name)

        @desk.get("/")
        async def page(request: Request) -> HTTPResponse:
            if not request.path.endswith("/"):  # the page's links are relative to .../desk/
                return response.redirect(request.path + "/")
            return response.html(layout.render(PAGE / "body.html", "Agent desk", "desk", "", ("static/style.css",),
                                               ("static/app.js",)), headers={"Cache-Control": "no-cache"})

        campaigns.add_routes(desk, lambda request: self._whatsapp(request).db)

        def authenticated(handler: Callable[..., Coroutine[Any, Any, HTTPResponse]]) -> Callable[..., Coroutine[Any, Any, HTTPResponse]]:
            @wraps(handler)
            async def check(request: Request, **kwargs: Any) -> HTTPResponse:
                whatsapp = self._whatsapp(request)
                user = await whatsapp.db.read(auth.identify, auth.bearer(request), auth.admin_token())
                if user is None:
                    return _error(401, "a valid agent token is required (Authorization: Bearer <token>)")
                return await handler(request, whatsapp, user.agent, **kwargs)

            return check

        def chat_of_agent(handler: Callable[..., Coroutine[Any, Any, HTTPResponse]]) -> Callable[..., Coroutine[Any, Any, HTTPResponse]]:
            """The open handoff of the chat, if this agent serves its label."""

            @wraps(handler)
            async def check(request: Request, whatsapp: WhatsAppInput, agent: Agent, contact_id: str) -> HTTPResponse:
                handoff = await whatsapp.db.read(handoffs.open_handoff, contact_id)
                if handoff is None:
                    return _error(404, "no chat of this customer is waiting for people")
                if not agent.serves(handoff.label):
                    return _error(403, f"you do not serve the label {handoff.label!r}")
                return await handler(request, whatsapp, agent, handoff)

            return check

        @desk.get("/api/me")
        @authenticated
        async def me(_: Request, whatsapp: WhatsAppInput, agent: Agent) -> HTTPResponse:
            languages = whatsapp.running.languages
            return response.json({"name": agent.name, "labels": list(agent.labels), "role": agent.role,
                                  "languages": list(languages.offered), "default_language": languages.default})

        @desk.get("/api/quick-replies")
        @authenticated
        async def quick_replies(request: Request, whatsapp: WhatsAppInput, agent: Agent) -> HTTPResponse:
            """`?language=de` (a chat's language): the quick replies in it first."""
            language = i18n.normalize(request.args.get("language"))
            replies = quick_replies_for(self.quick_replies, language) if language else self.quick_replies
            return response.json({"quick_replies": replies, "templates": desk_templates.listing(self.templates), "language": language})

        @desk.get("/api/chats")
        @authenticated
        async def chats(_: Request, whatsapp: WhatsAppInput, agent: Agent) -> HTTPResponse:
            labels = None if agents.ALL_LABELS in agent.labels else list(agent.labels)
            return response.json({"chats": await whatsapp.db.read(_chat_list, labels, time.time())})

        @desk.get("/api/chats/<contact_id>")
        @authenticated
        @chat_of_agent
        async def chat(_: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            history = await whatsapp.in_bot(whatsapp.running.history(handoff.contact_id))
            contact = await whatsapp.db.read(contacts.get, handoff.contact_id)
            labels = await whatsapp.db.read(contacts.labels, handoff.contact_id)
            if handoff.agent == agent.name:  # the customer sees blue ticks once an agent reads
                latest = next((h["message_id"] for h in reversed(history) if h["who"] == "customer"), None)
                if latest:
                    asyncio.get_running_loop().create_task(whatsapp.sender.mark_as_read(latest))
            return response.json({
                "chat": _chat_json(handoff, contact, time.time()),
                "labels": labels,
                "window_open": contacts.window_open(contact.last_inbound_at if contact else None, time.time()),
                "history": history,
            })

        @desk.post("/api/chats/<contact_id>/claim")
        @authenticated
        @chat_of_agent
        async def claim(_: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            if not await whatsapp.db.run(handoffs.claim, handoff.id, agent.name, time.time()):
                return _error(409, f"{handoff.agent} has this chat already")
            return response.json({"claimed": True, "agent": agent.name})

        async def send(whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff, payload: Dict[str, Any], text: str) -> HTTPResponse:
            """Sends as the claiming agent (claiming a queued chat on the way)."""
            if not await whatsapp.db.run(handoffs.claim, handoff.id, agent.name, time.time()):
                return _error(409, f"{handoff.agent} has this chat; claim it first")
            try:
                message_id = await whatsapp.sender.send(payload, contact_id=handoff.contact_id, origin="agent")
            except OutsideWindow as error:
                return _error(409, str(error), reason="outside_window", templates=desk_templates.listing(self.templates))
            except Deferred as error:  # goes out when WhatsApp takes it again
                await whatsapp.in_bot(whatsapp.running.log_agent_message(handoff.contact_id, text, agent.name))
                return response.json({"queued": True, "reason": str(error)}, status=202)
            except GraphApiError as error:
                return _error(502, str(error), code=error.code)
            await whatsapp.in_bot(whatsapp.running.log_agent_message(handoff.contact_id, text, agent.name))
            return response.json({"message_id": message_id})

        @desk.post("/api/chats/<contact_id>/reply")
        @authenticated
        @chat_of_agent
        async def reply(request: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            text = str((request.json or {}).get("text") or "").strip()
            if not text or len(text) > wire.TEXT_MAX:
                return _error(400, f"the reply must be 1-{wire.TEXT_MAX} characters")
            to = await whatsapp.sender.address(handoff.contact_id)
            return await send(whatsapp, agent, handoff, wire.text_message(to, text), text)

        @desk.post("/api/chats/<contact_id>/template")
        @authenticated
        @chat_of_agent
        async def template(request: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            """A template of templates.yml that WhatsApp approved, in the customer's
            language if approved in it, else the shop default's (web/desk_templates.py)."""
            name = str((request.json or {}).get("name") or "")
            contact = await whatsapp.db.read(contacts.get, handoff.contact_id)
            try:
                chosen = await whatsapp.db.read(desk_templates.choose, self.templates, name,
                                                contact.language if contact else None, whatsapp.running.languages.default)
            except HttpError as problem:
                return from_exception(problem)
            to = await whatsapp.sender.address(handoff.contact_id)
            payload = wire.custom_message(to, {"type": "template", "template": templates.message(chosen)})
            return await send(whatsapp, agent, handoff, payload, chosen.render())

        @desk.post("/api/chats/<contact_id>/language")
        @authenticated
        @chat_of_agent
        async def set_language(request: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            """The agent sets the conversation's language (the bot answers in it from the
            customer's next message on, until the customer clearly writes another)."""
            chosen = str((request.json or {}).get("language") or "")
            offered = whatsapp.running.languages.offered
            if chosen not in offered:
                return _error(400, f"the shop speaks {', '.join(offered)}, not {chosen!r}", languages=list(offered))
            await whatsapp.db.run(contacts.set_language, handoff.contact_id, chosen)
            return response.json({"language": chosen})

        @desk.post("/api/chats/<contact_id>/labels")
        @authenticated
        @chat_of_agent
        async def labels(request: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            body = request.json or {}

            def change(conn: Any) -> List[str]:
                for label in body.get("add") or []:
                    contacts.add_label(conn, handoff.contact_id, str(label).strip(), "agent", time.time())
                for label in body.get("remove") or []:
                    contacts.remove_label(conn, handoff.contact_id, str(label))
                return contacts.labels(conn, handoff.contact_id)

            return response.json({"labels": await whatsapp.db.run(change)})

        @desk.post("/api/chats/<contact_id>/return")
        @authenticated
        @chat_of_agent
        async def give_back(request: Request, whatsapp: WhatsAppInput, agent: Agent, handoff: handoffs.Handoff) -> HTTPResponse:
            note = str((request.json or {}).get("note") or "").strip()[:1000]
            if handoff.agent not in (None, agent.name):
                return _error(409, f"{handoff.agent} has this chat")
            await whatsapp.in_bot(whatsapp.running.resume(handoff.contact_id))
            await whatsapp.db.run(handoffs.close, handoff.id, f"{agent.name}: {note}" if note else agent.name, time.time())
            return response.json({"returned": True})

        @desk.get("/api/media/<media_id:path>")
        @authenticated
        async def media(_: Request, whatsapp: WhatsAppInput, agent: Agent, media_id: str) -> HTTPResponse:
            """A customer's photo or file, fetched from WhatsApp with the bot's token: only
            media a customer sent in a chat this agent may see (anything else is 404, and
            nothing is asked of the Graph API)."""
            owner = await whatsapp.db.read(messages.media_owner, media_id) if MEDIA_ID.fullmatch(media_id) else None
            handoff = await whatsapp.db.read(handoffs.open_handoff, owner[0]) if owner else None
            if owner is None or handoff is None or not agent.serves(handoff.label):
                return _error(404, "no such photo or file in a chat you serve")
            try:
                content, mime_type = await whatsapp.client.media(media_id, url=owner[1])
            except GraphApiError as error:
                return _error(502, str(error))
            return response.raw(content, content_type=mime_type, headers={"Cache-Control": "private, max-age=3600"})

        return desk

    @staticmethod
    def _whatsapp(request: Request) -> WhatsAppInput:
        for channel in getattr(request.app.ctx, "input_channels", []):
            if isinstance(channel, WhatsAppInput):
                return channel
        raise RuntimeError("the agent desk needs the WhatsApp channel in credentials.yml")


def _chat_json(handoff: handoffs.Handoff, contact: Optional[contacts.Contact], now: float) -> Dict[str, Any]:
    """A chat as the desk lists it: addressed by contact id; the profile name, the
    username and the phone number (when known) to show."""
    return {
        "contact_id": handoff.contact_id,
        "name": contact.profile_name if contact else None,
        "username": contact.username if contact else None,
        "phone": contact.phone if contact else None,
        "language": contact.language if contact else None,
        "label": handoff.label,
        "reason": handoff.reason,
        "status": handoff.status,
        "agent": handoff.agent,
        "waiting_seconds": round(now - handoff.requested_at),
        "last_message_at": contact.last_inbound_at if contact else None,
    }


def _language_of(item: Dict[str, Any]) -> Optional[str]:
    """"de", "en_US" -> "en"; None for an item without a language (it fits every chat)."""
    return i18n.normalize(str(item.get("language") or "").split("_")[0])


def quick_replies_for(replies: List[Dict[str, Any]], language: Optional[str]) -> List[Dict[str, Any]]:
    """The quick replies a chat in `language` is offered: those in its language (and
    those without one) first, in the file's order, then the others, marked `own: false`
    (an agent may still pick one, e.g. for a customer who switched language)."""
    language = i18n.normalize(language)

    def own(reply: Dict[str, Any]) -> bool:
        return _language_of(reply) in (None, language)

    return [{**r, "own": True} for r in replies if own(r)] + [{**r, "own": False} for r in replies if not own(r)]


def _chat_list(conn: Any, labels: Optional[List[str]], now: float) -> List[Dict[str, Any]]:
    return [_chat_json(h, contacts.get(conn, h.contact_id), now) for h in handoffs.open_handoffs(conn, labels)]
