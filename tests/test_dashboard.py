"""The dashboard page, its counts JSON and its Socket.IO namespace, scoped by region."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient

from player import protocol
from server.extensions import db, socketio
from server.models import Screen
from server.models.base import utcnow
from server.realtime.dashboard_namespace import NAMESPACE, PRESENCE
from server.services import presence
from server.services import screens as screen_service
from tests.conftest import AuthActions, World
from tests.test_screens import publish

DASH = "/admin/dashboard"


def english(client: FlaskClient) -> None:
    client.get("/admin/login?lang=en")


def screens(world: World) -> dict[str, Screen]:
    """Two online and one offline in town T1, one online in T2."""
    made = {}
    for name, region, online in (("甲屏", world.village, True), ("乙屏", world.village2, True),
                                 ("丙屏", world.village, False),
                                 ("南岭屏", world.other_village, True)):
        screen, _token = screen_service.provision(None, region, name)
        if online:
            screen_service.record_connect(screen, f"sid-{screen.id}", "10.0.0.9")
            presence.seen(screen)
        made[name] = screen
    return made


def stat(page: str, key: str) -> str:
    match = re.search(rf'data-count="{key}">([^<]*)<', page)
    assert match, key
    return match.group(1)


def test_the_page_shows_counts_boot_rate_and_screens_of_the_users_regions(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    made = screens(world)
    notice = publish(world, [world.village.code])
    screen_service.record_heartbeat(made["甲屏"], {"showing": notice.code},
                                    made["甲屏"].connected_sid)
    english(client)
    auth.login("admin")
    page = client.get(DASH).get_data(as_text=True)
    assert (stat(page, "online"), stat(page, "offline"), stat(page, "total")) == ("3", "1", "4")
    assert stat(page, "boot_today") == "75"  # 3 of 4 seen today
    assert 'id="boot-chart"' in page and page.count("<rect ") == 30  # a bar a day
    assert re.search(r'data-group="T1">.*?data-group="T2"', page, re.S)  # a row per town
    assert notice.current.title in page  # what 甲屏 shows
    assert "/static/vendor/socket.io.min.js" in page and "/static/dashboard.js" in page
    assert 'href="/admin/dashboard" aria-current="page"' in page  # the nav link

    auth.logout()
    auth.login("teditor")  # town T1 only
    page = client.get(DASH).get_data(as_text=True)
    assert (stat(page, "online"), stat(page, "offline"), stat(page, "total")) == ("2", "1", "3")
    assert "南岭屏" not in page and "甲屏" in page
    assert 'data-group="V11"' in page and 'data-group="T2"' not in page  # per village


def test_people_without_a_dashboard_role_are_refused(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    assert client.get(DASH).status_code == 302  # to the login page
    resp = client.get(DASH + "/counts.json", headers={"Accept": "application/json"})
    assert resp.status_code == 401
    auth.login("treviewer")
    assert client.get(DASH).status_code == 403
    assert client.get(DASH + "/counts.json").status_code == 403
    page = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/dashboard"' not in page


def test_counts_json_is_scoped_and_follows_connects(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    made = screens(world)
    auth.login("teditor")
    data = client.get(DASH + "/counts.json").get_json()
    assert {k: data[k] for k in ("online", "offline", "total")} == {
        "online": 2, "offline": 1, "total": 3}
    assert data["screens"] == {made["甲屏"].code: True, made["乙屏"].code: True,
                               made["丙屏"].code: False}
    screen_service.record_disconnect(made["甲屏"], made["甲屏"].connected_sid or "")
    data = client.get(DASH + "/counts.json").get_json()
    assert (data["online"], data["offline"]) == (1, 2)
    assert data["screens"][made["甲屏"].code] is False


def test_offline_for_long_is_highlighted_with_since_ip_and_what_it_showed(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    made = screens(world)
    gone = made["乙屏"]
    notice = publish(world, [world.village2.code])
    screen_service.record_heartbeat(gone, {"showing": notice.code}, gone.connected_sid)
    screen_service.record_disconnect(gone, gone.connected_sid or "")
    gone.last_seen_at = utcnow() - timedelta(minutes=app.config["OFFLINE_ALERT_MINUTES"] + 30)
    db.session.commit()
    english(client)
    auth.login("ceditor")
    page = client.get(DASH).get_data(as_text=True)
    assert stat(page, "offline_long") == "1"
    table = page.split('id="offline-table"', 1)[1].split("</table>", 1)[0]
    assert made["丙屏"].code not in table  # added just now: not offline for long yet
    row = table.split(f'data-code="{gone.code}"', 1)[1].split("</tr>", 1)[0]
    assert "10.0.0.9" in row and notice.current.title in row
    assert "ago" in row


# --- the Socket.IO namespace ---------------------------------------------------------------


def dashboard_client(app: Flask, client: FlaskClient) -> SocketIOTestClient:
    return socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)


def logged_in(app: Flask, username: str) -> FlaskClient:
    """A client of its own logged in as `username`. The test's app context outlives requests:
    each login runs in a fresh one, so nothing cached in `g` (Flask-Login's user, Flask-WTF's
    CSRF token) leaks from one client to the next."""
    client = app.test_client()
    with app.app_context():
        AuthActions(client).login(username)
    return client


def presence_events(sock: SocketIOTestClient) -> list[dict[str, Any]]:
    return [e["args"][0] for e in sock.get_received(NAMESPACE) if e["name"] == PRESENCE]


def test_the_namespace_refuses_anonymous_and_roleless_users(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    assert not dashboard_client(app, client).is_connected(NAMESPACE)
    assert not socketio.test_client(app, namespace=NAMESPACE).is_connected(NAMESPACE)
    auth.login("treviewer")
    assert not dashboard_client(app, client).is_connected(NAMESPACE)


def test_players_coming_and_going_reach_the_dashboards_of_their_regions(
    app: Flask, world: World
) -> None:
    county_http, town_http = logged_in(app, "admin"), logged_in(app, "teditor")
    other_http = logged_in(app, "talert")  # also town T1: alert officers see it too
    county, town, other = (dashboard_client(app, c) for c in (county_http, town_http,
                                                              other_http))
    assert county.is_connected(NAMESPACE) and town.is_connected(NAMESPACE)
    assert other.is_connected(NAMESPACE)

    screen, token = screen_service.provision(None, world.other_village, "南岭屏")
    player = socketio.test_client(app, namespace=protocol.NAMESPACE, auth={"token": token})
    assert player.is_connected(protocol.NAMESPACE)
    assert presence_events(county) == [{"screen": screen.code, "online": True}]
    assert presence_events(town) == []  # T2's screen is not T1's business

    village_screen, village_token = screen_service.provision(None, world.village, "前王庄屏")
    village = socketio.test_client(app, namespace=protocol.NAMESPACE,
                                   auth={"token": village_token})
    village.disconnect(namespace=protocol.NAMESPACE)
    expected = [{"screen": village_screen.code, "online": True},
                {"screen": village_screen.code, "online": False}]
    assert presence_events(town) == expected
    assert presence_events(other) == expected
    assert presence_events(county) == expected
    player.disconnect(namespace=protocol.NAMESPACE)
    assert presence_events(county) == [{"screen": screen.code, "online": False}]


def test_a_silent_screen_swept_by_the_scheduler_reaches_the_dashboard(
    app: Flask, world: World
) -> None:
    sock = dashboard_client(app, logged_in(app, "teditor"))
    screen, _token = screen_service.provision(None, world.village, "断网屏")
    screen_service.record_connect(screen, "sid-dead-process")
    screen.last_seen_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    presence.sweep_silent()
    assert presence_events(sock) == [{"screen": screen.code, "online": False}]
