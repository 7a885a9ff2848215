"""A SQL tracker store that gives Rasa only the recent part of long conversations.

Rasa's policies recompute dialogue states over the whole tracker on every prediction (and
RulePolicy formats and copies them all for a debug log line), so with the stock
SQLTrackerStore each message costs more than the one before. This store loads at most
the latest `max_events` events of the session, plus, when it cuts, the state they
depend on (the latest value of every slot, the active form, paused or not) as the
events that set it. A message then costs the same at turn 300 as at turn 10, which the
policies cannot tell apart: they look at the last few turns only (max_history).

All events are still stored; `retrieve_full_tracker` (exports, the agent desk's
history, the review command) returns everything.

endpoints.yml:
    tracker_store:
      type: rasa_plugins.tracker_store.WindowedSQLTrackerStore
      dialect: sqlite        # or postgresql with url/port/username/password
      db: var/tracker.db
      max_events: 100
"""
import functools
import itertools
import json
import logging
from typing import Any, Dict, Iterator, List, Optional, Text, Type

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

# Event types whose latest occurrence before the window still shapes the conversation.
_LOADED = "_windowed_store_loaded"  # events[:n] of a retrieved tracker are stored already
# Finds the slot, form and pause events before the window, and the session start, by
# index instead of by reading the whole conversation.
_STATE_INDEX = "ix_events_sender_type_action_id"


@functools.lru_cache(maxsize=None)
def _event_class(type_name: Text) -> Optional[Type[Event]]:
    # Rasa's Event.resolve_by_type walks every subclass of Event for every event it
    # reads (about 0.1 ms each, 10 ms for a window of 100 events).
    return Event.resolve_by_type(type_name)


def deserialise_events(dicts: List[Dict[Text, Any]]) -> List[Event]:
    """rasa.shared.core.events.deserialise_events, with the event classes looked up once."""
    events = []
    for data in dicts:
        event_class = _event_class(data["event"]) if "event" in data else None
        event = event_class._from_parameters(data) if event_class else None
        if event is not None:
            events.append(event)
    return events


class WindowedSQLTrackerStore(SQLTrackerStore):
    def __init__(self, domain: Any = None, max_events: int = 100, **kwargs: Any) -> None:
        super().__init__(domain, **kwargs)
        self.max_events = int(max_events)
        try:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {_STATE_INDEX} ON events (sender_id, type_name, action_name, id)"
                )
        except sa.exc.SQLAlchemyError as error:  # e.g. two workers creating it at once
            logger.warning("Could not create index %s on the tracker store's events: %s", _STATE_INDEX, error)

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        if fetch_events_from_all_sessions or self.domain is None:
            return await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        events = [json.loads(data) for data in self._window(sender_id)]
        if not events:
            return None
        tracker = DialogueStateTracker.from_events(sender_id, deserialise_events(events), self.domain.slots)
        setattr(tracker, _LOADED, len(events))
        return tracker

    def _window(self, sender_id: Text) -> List[Text]:
        """The stored events (JSON) of the latest session: at most the latest
        `max_events`, preceded, when that cuts the session, by the state they depend on:
        the latest value of every slot and the latest form / pause event from before the
        window, in their original order. Core SQL (Rasa's ORM queries cost several times
        more than the database's work) on three indexed queries."""
        c = self.SQLEvent.__table__.c
        with self.engine.connect() as connection:
            # Rasa's definition of the latest session (SQLTrackerStore._event_query).
            session_start = connection.execute(
                sa.select(sa.func.max(c.timestamp)).where(c.sender_id == sender_id, c.type_name == SessionStarted.type_name)
            ).scalar()
            in_session = [c.sender_id == sender_id] + ([c.timestamp >= session_start] if session_start is not None else [])
            latest = connection.execute(
                sa.select(c.id, c.data).where(*in_session).order_by(c.id.desc()).limit(self.max_events)
            ).all()
            latest.reverse()
            if len(latest) < self.max_events:
                return [data for _, data in latest]
            before = [*in_session, c.id < latest[0].id]
            # For slot events Rasa stores the slot's name in `action_name`.
            state_ids = sa.union_all(
                sa.select(sa.func.max(c.id)).where(*before, c.type_name == "slot").group_by(c.action_name),
                sa.select(sa.func.max(c.id)).where(*before, c.type_name == "active_loop"),
                sa.select(sa.func.max(c.id)).where(*before, c.type_name.in_(("pause", "resume"))),
            )
            earlier = connection.execute(sa.select(c.id, c.data).where(c.id.in_(state_ids)).order_by(c.id)).all()
        return [data for _, data in itertools.chain(earlier, latest)]

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        loaded = getattr(tracker, _LOADED, None)
        if loaded is None:  # not retrieved here (a new conversation): count what is stored
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, loaded, len(tracker.events))

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(tracker)
        if hasattr(tracker, _LOADED):
            setattr(tracker, _LOADED, len(tracker.events))
