"""A dropped connection resumes without losing an edit made while it was down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._tool import Canvas, object_count, open_tool, saved
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


def _one_box_saved(browser: Any, live: Live, tmp_path: Path,
                   name: str) -> tuple[Any, int, int, Any, Canvas]:
    """A project with one image, open in the tool, holding one saved box at (10, 10)."""
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": name}).json()["id"]
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 3).read_bytes())})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]
    page = login(browser, live)
    open_tool(page, live, pid, image)
    canvas = Canvas(page, 320, 240)
    page.keyboard.press("b")
    canvas.drag([(10, 10), (50, 40)])
    saved(page)
    return api, pid, image, page, canvas


def test_edit_while_offline_is_sent_after_reconnect(browser: Any, live: Live, tmp_path: Path) -> None:
    api, pid, _image, page, canvas = _one_box_saved(browser, live, tmp_path, "Flaky network")
    # Drop the socket (as a network blip would) and draw while it is down.
    page.evaluate("window.labelhub.hub.ws.close()")
    page.wait_for_selector("#conn[data-state=reconnecting]")
    canvas.drag([(100, 100), (160, 150)])
    object_count(page, 2)
    page.wait_for_selector("#conn[data-state=online]")
    saved(page)
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    boxes = sorted((o["geometry"]["x"], o["geometry"]["y"]) for o in body["images"][0]["objects"])
    assert boxes == [(10, 10), (100, 100)]
    # Still the editor after the resume: one more edit goes through.
    canvas.drag([(200, 150), (240, 200)])
    saved(page)
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    assert len(body["images"][0]["objects"]) == 3
    assert page.js_errors == []


RESUME = r"""
async () => {
  const { HubClient } = await import("/socket.js");
  const sockets = [];
  class FakeWs { constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
                 send(t) { this.sent.push(JSON.parse(t)); } close() { this.readyState = 3; } }
  const turn = () => new Promise((r) => setTimeout(r, 0));
  let finishResume;
  const resumeDone = new Promise((r) => { finishResume = r; });
  const hub = new HubClient({ url: "ws://x", project: 1, WebSocketImpl: FakeWs, heartbeatMs: 1e9,
                              onResume: () => resumeDone });
  const open = async (ws) => {
    ws.readyState = 1; ws.onopen();
    ws.onmessage({ data: JSON.stringify({ type: "ack", id: ws.sent[0].id, seq: 3, user: { id: 1 }, privileges: ["label"] }) });
    await turn();
  };
  hub.connect();
  await open(sockets[0]);
  hub.tokens.set(9, 1);  // the lock, as open_image left it
  hub.drop();
  hub.reconnectNow();
  await open(sockets[1]);
  // Online again, while the app re-takes the image (onResume): an edit made now waits ...
  const state = hub.state;
  hub.sendOp(9, { kind: "delete", object_id: "b1" }).catch(() => {});
  const ops = () => sockets[1].sent.filter((m) => m.type === "op");
  const duringResume = ops().length;
  hub.retoken(9, 2);  // ... the image re-taken with a new token ...
  finishResume();
  await turn();
  // ... and goes once, with the new token.
  return { state, duringResume, tokens: ops().map((m) => m.token), pending: hub.pending };
}
"""


def test_an_edit_made_while_the_app_resumes_waits_for_the_new_lock(browser: Any, live: Live) -> None:
    """Made between "online again" and the image re-taken, an edit went out at once with the
    old token (refused: listed as not saved), then again with the new one. A race the test
    above can hit on a loaded machine (it failed once in a full run here, not reproduced)."""
    context = browser.new_context()
    live.closers.append(context.close)
    page = context.new_page()
    page.goto(live.url + "/#/login")
    out = page.evaluate(RESUME)
    assert out == {"state": "online", "duringResume": 0, "tokens": [2], "pending": 1}


def test_an_edit_not_yet_acknowledged_survives_a_snapshot(browser: Any, live: Live, tmp_path: Path) -> None:
    """A snapshot replaces the canvas's objects; an edit still waiting for its ack (here: held in
    the outbox while the app resumes, as after a reconnect) is not in it. It vanished from the
    canvas though it was saved a moment later; now it is shown on top of the snapshot."""
    api, pid, image, page, canvas = _one_box_saved(browser, live, tmp_path, "Snapshots")
    page.evaluate("window.labelhub.hub.resuming = true")  # new edits wait in the outbox
    canvas.drag([(100, 100), (160, 150)])
    object_count(page, 2)
    in_snapshot = page.evaluate(f"""async () => {{
        const hub = window.labelhub.hub;
        const app = hub.onEvent;  // the app's handler sees every event as before
        const snapshot = new Promise((resolve) => {{
          hub.onEvent = (m) => {{ app(m); if (m.type === "snapshot") {{ hub.onEvent = app; resolve(m); }} }};
        }});
        await hub.request("subscribe", {{ image: {image} }});
        return (await snapshot).objects.length;
    }}""")
    assert in_snapshot == 1  # the server's snapshot: only the saved box
    object_count(page, 2)  # the canvas: the saved box and the one on its way
    page.evaluate("(() => { const hub = window.labelhub.hub; hub.resuming = false;"
                  " for (const item of hub.outbox) hub.transmit(item.msg); })()")
    saved(page)
    object_count(page, 2)
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    assert sorted((o["geometry"]["x"], o["geometry"]["y"]) for o in body["images"][0]["objects"]) == [(10, 10), (100, 100)]
    assert page.js_errors == []
