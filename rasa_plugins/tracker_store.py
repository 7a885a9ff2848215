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
import itertools
import json
from typing import Any, Iterator, List, Optional, Text

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

# Event types whose latest occurrence before the window still shapes the conversation.
_STATE_EVENTS = ("active_loop", "pause", "resume")
_LOADED = "_windowed_store_loaded"  # events[:n] of a retrieved tracker are stored already


class WindowedSQLTrackerStore(SQLTrackerStore):
    def __init__(self, domain: Any = None, max_events: int = 100, **kwargs: Any) -> None:
        super().__init__(domain, **kwargs)
        self.max_events = int(max_events)

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        if fetch_events_from_all_sessions or self.domain is None:
            return await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        with self.session_scope() as session:
            session_events = self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
            latest = session_events.order_by(None).order_by(self.SQLEvent.id.desc()).limit(self.max_events).all()
            if not latest:
                return None
            latest.reverse()
            earlier = self._state_before(session_events, latest[0].id) if len(latest) == self.max_events else []
            events = [json.loads(row.data) for row in earlier + latest]
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        setattr(tracker, _LOADED, len(events))
        return tracker

    def _state_before(self, session_events: Any, first_id: int) -> List[Any]:
        """The latest slot value of every slot, and the latest form / pause event, from
        before the window (within the same session), in their original order."""
        before = session_events.order_by(None).filter(self.SQLEvent.id < first_id)
        # For slot events Rasa stores the slot's name in `action_name`.
        latest_slots = before.filter(self.SQLEvent.type_name == "slot").with_entities(sa.func.max(self.SQLEvent.id)).group_by(self.SQLEvent.action_name)
        latest_loop = before.filter(self.SQLEvent.type_name == "active_loop").with_entities(sa.func.max(self.SQLEvent.id))
        latest_pause = before.filter(self.SQLEvent.type_name.in_(("pause", "resume"))).with_entities(sa.func.max(self.SQLEvent.id))
        ids = [i for (i,) in itertools.chain(latest_slots.all(), latest_loop.all(), latest_pause.all()) if i is not None]
        if not ids:
            return []
        return before.filter(self.SQLEvent.id.in_(ids)).order_by(self.SQLEvent.id).all()

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        loaded = getattr(tracker, _LOADED, None)
        if loaded is None:  # not retrieved here (a new conversation): count what is stored
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, loaded, len(tracker.events))

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(tracker)
        if hasattr(tracker, _LOADED):
            setattr(tracker, _LOADED, len(tracker.events))
