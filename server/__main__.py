"""Entry point of the `cunping` command.

`cunping player ...` runs the kiosk player and imports nothing from Flask, so a set-top box can
install the player alone. Everything else is the server's command group (server/cli.py).
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "player":
        from player.__main__ import main as player_main

        sys.argv = ["cunping player", *args[1:]]
        player_main()
        return
    if args and (args[0] == "serve" or (args[0] == "demo" and "--serve" in args)):
        # gevent must patch the standard library before anything else imports it.
        from gevent import monkey

        monkey.patch_all()
    from server.cli import main as server_main

    server_main()


if __name__ == "__main__":
    main()
