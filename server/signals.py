"""In-process announcements sent after a change is committed (save, then push).

The realtime layer subscribes to these to tell the screens; tests subscribe to check them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: sent with `notice_ids` (list[int]) and `reason` after notices change what residents see
notice_changed = _signals.signal("notice-changed")
