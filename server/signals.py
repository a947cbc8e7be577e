"""In-process announcements sent after a change is committed (save, then push).

The realtime layer subscribes to these to tell the screens; tests subscribe to check them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: sent with `notice_ids` (list[int]) and `reason` after notices change what residents see;
#: also `region_ids` (the regions whose screens are affected: old and new targets), `revision`
#: (the highest revision of the change) and `changes` (per notice: notice_id, region_ids,
#: revision; see services.notices.ScreenChange)
notice_changed = _signals.signal("notice-changed")

#: sent with `request_id` after an editor claimed a pairing request (the player gets its token)
screen_paired = _signals.signal("screen-paired")

#: sent with `screen_id`, `sid` (its connection, or None) and `reason` after a screen was
#: revoked or given a new token ("revoked": its connection must end), moved to another region
#: ("moved") or renamed ("renamed")
screen_changed = _signals.signal("screen-changed")

#: sent with `alert_ids`, `region_ids` (old and new targets) and `reason` after an alert came
#: into force, changed or ended: the alert dispatcher sends the affected screens their set
alerts_changed = _signals.signal("alerts-changed")

#: sent with `screen_id`, `online` (bool) and `region_ids` (its chain) when a screen's
#: connection opens or closes, or it is found silent: the live dashboard updates its counts
screen_presence = _signals.signal("screen-presence")
