"""What a server process knows of the screens without asking the database.

A screen's connect, its heartbeats and its reconciles are answered from here: its token (as the
SHA-256 the database keeps), its region chain, the regions' names and the revision of each
region (services.revisions). At 10,000 screens a restart brings 10,000 connects in the first
minute; each used to cost two queries and a pooled connection, which is what turned a storm
into a queue behind the pool.

Kept current by
- the loader: everything at start (`load`), and again every RELOAD_SECONDS — the periodic
  reconcile that corrects anything an invalidation missed;
- the revision counter, read once a second by the alert dispatcher's loop (`refresh`): only
  the regions changed since are read, one small query;
- invalidations: a revoke, move, rename or new token in any process drops the screen from
  every process's memory at once (server/realtime/__init__.py sends them through the message
  queue), and the next connect with that token reads the database again;
- a player that reports a revision newer than this process knows (it heard a push from
  another process first): the revisions are re-read before it is answered.

A token that is not here (a screen added a moment ago, or dropped by an invalidation) is looked
up in the database: the uncommon path.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from server.extensions import db
from server.models import Region, RegionRevision, Screen
from server.services import revisions
from server.services.screens import SCREENS_COUNTER

RELOAD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ScreenEntry:
    """A screen in use (not revoked), as a connection needs it."""

    id: int
    code: str
    name: str
    region_id: int
    chain: tuple[int, ...]  # its region and every ancestor, root first
    width: int
    height: int
    orientation: str


def _chain(path: str, region_id: int) -> tuple[int, ...]:
    ids = tuple(int(x) for x in path.strip("/").split("/") if x)
    return ids or (region_id,)


class Directory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, ScreenEntry] = {}
        self._hash_of: dict[int, str] = {}  # screen id -> token hash
        self._regions: dict[int, tuple[str, tuple[int, ...]]] = {}  # id -> (name, chain)
        self._revisions: dict[int, int] = {}  # region id -> revision of its last change
        self.counter = -1  # the global revision counter when the revisions were read
        self.screens_counter = -1  # the screens' counter when the screens were read
        self.loaded_at = 0.0  # monotonic; 0: never loaded

    # -- loading (in an app context) ------------------------------------------------------

    def load(self) -> None:
        """Read every screen in use, every region and the regions' revisions (five queries)."""
        counter = revisions.current()
        screens_counter = revisions.current(SCREENS_COUNTER)
        rows = db.session.execute(
            select(Screen.id, Screen.code, Screen.name, Screen.region_id, Screen.token_hash,
                   Screen.width, Screen.height, Screen.orientation)
            .where(Screen.revoked_at.is_(None), Screen.token_hash.is_not(None))
        ).all()
        regions = {rid: (name, _chain(path, rid)) for rid, name, path in db.session.execute(
            select(Region.id, Region.name, Region.path)
        )}
        revs = {rid: rev for rid, rev in db.session.execute(
            select(RegionRevision.region_id, RegionRevision.revision)
        )}
        by_hash: dict[str, ScreenEntry] = {}
        for sid, code, name, region_id, token_hash, width, height, orientation in rows:
            chain = regions.get(region_id, ("", (region_id,)))[1]
            by_hash[token_hash] = ScreenEntry(sid, code, name, region_id, chain, width, height,
                                              orientation)
        with self._lock:
            self._by_hash = by_hash
            self._hash_of = {e.id: h for h, e in by_hash.items()}
            self._regions = regions
            for rid, rev in revs.items():  # never backwards: a push may have told us more
                if rev > self._revisions.get(rid, -1):
                    self._revisions[rid] = rev
            self.counter = max(self.counter, counter)
            self.screens_counter = screens_counter
            self.loaded_at = time.monotonic()

    def ensure_loaded(self) -> None:
        if not self.loaded_at:
            self.load()

    def due(self) -> bool:
        """Time for the periodic reload, or a screen was revoked, moved or given a new token
        (by any process, the command line included) since the last one."""
        return time.monotonic() - self.loaded_at >= RELOAD_SECONDS \
            or revisions.current(SCREENS_COUNTER) != self.screens_counter

    def refresh(self) -> bool:
        """Read the regions changed since the counter last read (when it moved). True when
        something changed."""
        counter = revisions.current()
        if counter == self.counter:
            return False
        changed = db.session.execute(
            select(RegionRevision.region_id, RegionRevision.revision)
            .where(RegionRevision.revision > self.counter)
        ).all()
        self.note([(rid, rev) for rid, rev in changed], counter)
        return True

    def lookup(self, token_hash: str) -> ScreenEntry | None:
        """The database's answer for a token this process does not know (an app context)."""
        screen = db.session.scalar(
            select(Screen).where(Screen.token_hash == token_hash, Screen.revoked_at.is_(None))
        )
        return self.remember(screen) if screen is not None else None

    def remember(self, screen: Screen) -> ScreenEntry | None:
        """Take `screen` as the database has it now (an app context); None when revoked."""
        with self._lock:
            old = self._hash_of.pop(screen.id, None)
            if old is not None:
                self._by_hash.pop(old, None)
        if screen.revoked_at is not None or screen.token_hash is None:
            return None
        region = screen.region
        entry = ScreenEntry(screen.id, screen.code, screen.name, screen.region_id,
                            _chain(region.path, region.id), screen.width, screen.height,
                            screen.orientation)
        with self._lock:
            self._by_hash[screen.token_hash] = entry
            self._hash_of[entry.id] = screen.token_hash
            if region.id not in self._regions:
                self._regions[region.id] = (region.name, entry.chain)
                for ancestor in region.ancestors():
                    self._regions.setdefault(
                        ancestor.id, (ancestor.name, _chain(ancestor.path, ancestor.id)))
        return entry

    # -- reading (no database) ------------------------------------------------------------

    def screen(self, token_hash: str) -> ScreenEntry | None:
        return self._by_hash.get(token_hash)

    def screen_by_id(self, screen_id: int) -> ScreenEntry | None:
        token_hash = self._hash_of.get(screen_id)
        return self._by_hash.get(token_hash) if token_hash is not None else None

    def screen_regions(self) -> dict[int, tuple[int, ...]]:
        """The regions screens are in (region id → chain)."""
        with self._lock:
            return {entry.region_id: entry.chain for entry in self._by_hash.values()}

    def revision(self, chain: tuple[int, ...]) -> int:
        """What screens with this chain should be at: the newest change over the chain."""
        revs = self._revisions
        return max((revs.get(rid, 0) for rid in chain), default=0)

    def names(self, entry: ScreenEntry) -> tuple[str, str]:
        """(full name of the screen's region, name of the root)."""
        names = [self._regions.get(rid, ("",))[0] for rid in entry.chain]
        return " · ".join(n for n in names if n), names[0] if names else ""

    def __len__(self) -> int:
        return len(self._by_hash)

    # -- changes --------------------------------------------------------------------------

    def note(self, changes: list[tuple[int, int]], counter: int | None = None) -> None:
        """Regions changed at these revisions (a commit of this process, or read back)."""
        with self._lock:
            for rid, rev in changes:
                if rev > self._revisions.get(rid, -1):
                    self._revisions[rid] = rev
            if counter is not None:
                self.counter = max(self.counter, counter)

    def forget(self, screen_id: int) -> None:
        """The screen was revoked, moved, renamed or given a new token: read it again."""
        with self._lock:
            token_hash = self._hash_of.pop(screen_id, None)
            if token_hash is not None:
                self._by_hash.pop(token_hash, None)
