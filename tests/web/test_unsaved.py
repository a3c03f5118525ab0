"""No silent loss: an edit made offline that the server refuses after the reconnect (the lock
expired and someone else took the image) is listed as not saved and can be re-applied.

The scenario of issue 15: labeler A draws a box while the network is gone, A's lease expires, B
opens the image and edits it; when A is back, A's tool says "1 edit was not saved", lists the
box, offers Re-apply once B lets the image go, and Re-apply puts the box on the server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from server.models import ImageLock, utcnow
from server.settings import Settings
from tests.conftest import make_settings
from tests.web._images import scene
from tests.web._tool import Canvas, object_count, objects_of, open_tool, saved
from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A lease no step of a test outlasts, however loaded the machine: a lease held stays held
    # until the test lets it lapse (``lapse``), and the lapse is awaited (B's tool hears it).
    return make_settings(database_url, tmp_path / "data", lock_ttl_seconds=3600.0)


def lapse(database_url: str, image: int) -> None:
    """The image's lease runs out now, as one does when its holder's heartbeats stop for a
    lease length: its expiry is moved to the past, and the server's lease sweep frees it."""
    engine = create_engine(database_url.replace("+aiosqlite", ""), connect_args={"timeout": 30})
    try:
        with engine.begin() as db:
            done = db.execute(update(ImageLock).where(ImageLock.image_id == image, ImageLock.holder_id.is_not(None))
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
            assert done.rowcount == 1, "nobody holds the image"
    finally:
        engine.dispose()


def test_refused_offline_edit_is_listed_and_reapplied(browser: Any, live: Live, tmp_path: Path,
                                                      database_url: str) -> None:
    api = live.api()
    bob_email, bob_password, _ = make_user(api, "bob")
    pid = api.post("/api/v1/projects", json={"name": "Flaky network"}).json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": bob_email, "role": "labeler"}).status_code == 201
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 3).read_bytes())})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]

    a = login(browser, live)
    b = login(browser, live, bob_email, bob_password)
    open_tool(a, live, pid, image)
    a.wait_for_selector("#new-label")  # A holds the image
    open_tool(b, live, pid, image)
    b.wait_for_selector(".banner:has-text('is labeling this image right now')")

    # A's network goes away just after a heartbeat renewed the lease; A draws a box.
    a.evaluate("window.labelhub.hub.request('heartbeat', { active: true })")
    a.context.set_offline(True)
    a.wait_for_selector("#conn[data-state=reconnecting]")
    canvas_a = Canvas(a, 320, 240)
    a.keyboard.press("b")
    canvas_a.drag([(20, 20), (70, 60)])
    object_count(a, 1)
    a.wait_for_selector("#conn:has-text('Offline — 1 edit waiting')")
    a.wait_for_selector("#save-state[data-state=saving]")

    # A's lease expires (B's tool hears it); B takes the image and draws its own box.
    # B takes it where B is, with the button the tool offers (no reload).
    lapse(database_url, image)
    b.wait_for_selector(".banner:has-text('the image is free now')")
    b.click("#start-labeling")
    b.wait_for_selector("#new-label")
    assert b.locator(".banner").is_hidden() and b.locator("#start-labeling").count() == 0
    canvas_b = Canvas(b, 320, 240)
    b.keyboard.press("b")
    canvas_b.drag([(150, 100), (200, 150)])
    object_count(b, 1)
    saved(b)

    # A is back: the box is not lost quietly.
    a.context.set_offline(False)
    a.wait_for_selector("#conn[data-state=online]")
    a.wait_for_selector("#unsaved-title:has-text('1 edit was not saved')")
    item = a.locator("#unsaved-list li")
    assert item.count() == 1
    text = item.inner_text()
    assert "create" in text and "Box" in text and "lock was lost" in text
    assert a.get_attribute("#save-state", "data-state") == "unsaved"
    assert a.locator("#save-state").inner_text() != "All saved"
    assert a.is_disabled("#unsaved-reapply")  # B holds the image
    object_count(a, 1)  # what the server has: B's box
    assert [o["geometry"]["x"] for o in objects_of(live, pid, image)] == [150]

    # B lets the image go; A re-applies: the box is on the server, drawn on top of B's work.
    b.click("a.button:has-text('Close')")
    a.wait_for_selector("#unsaved-reapply:not([disabled])")
    a.click("#unsaved-reapply")
    a.wait_for_selector("#unsaved", state="hidden")
    object_count(a, 2)
    saved(a)
    boxes = sorted((o["geometry"]["x"], o["geometry"]["y"]) for o in objects_of(live, pid, image))
    assert boxes == [(20, 20), (150, 100)]
    assert a.locator("#save-state").inner_text() == "All saved"
    assert a.js_errors == [] and b.js_errors == []


def test_copy_as_json_and_discard(browser: Any, live: Live, tmp_path: Path) -> None:
    """A refused edit can be kept as JSON (here the clipboard is refused: a textarea shows it) and
    discarded; a reviewer's take-over refuses the edit the same way an expired lease does."""
    api = live.api()
    rita_email, rita_password, _ = make_user(api, "rita")
    pid = api.post("/api/v1/projects", json={"name": "Take over"}).json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": rita_email, "role": "labeler"}).status_code == 201
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 4).read_bytes())})
    image = resp.json()["results"][0]["image"]["id"]

    r = login(browser, live, rita_email, rita_password)
    open_tool(r, live, pid, image)
    r.wait_for_selector("#new-label")
    r.context.set_offline(True)
    r.wait_for_selector("#conn[data-state=reconnecting]")
    r.keyboard.press("b")
    Canvas(r, 320, 240).drag([(30, 30), (90, 80)])
    r.wait_for_selector("#conn:has-text('Offline — 1 edit waiting')")
    # The admin (a reviewer) takes the image over while Rita is away.
    admin = login(browser, live)
    open_tool(admin, live, pid, image)
    admin.click("#take-over")
    admin.wait_for_selector("#new-label")
    r.context.set_offline(False)
    r.wait_for_selector("#unsaved-title:has-text('1 edit was not saved')")
    assert r.is_disabled("#unsaved-reapply")
    # Kept across a reload of the page (sessionStorage), still not re-appliable.
    r.reload()
    r.wait_for_selector("#unsaved-title:has-text('1 edit was not saved')")
    r.wait_for_selector("#conn[data-state=online]")
    assert r.is_disabled("#unsaved-reapply")
    r.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); }")
    r.click("#unsaved-copy")
    copied = r.locator("#unsaved-json").input_value()
    assert '"kind": "create"' in copied and f'"image": {image}' in copied
    r.click("#unsaved-discard")
    r.wait_for_selector("#unsaved", state="hidden")
    r.wait_for_selector("#save-state[data-state=saved]")
    assert objects_of(live, pid, image) == []
    assert r.js_errors == [] and admin.js_errors == []


RULES = r"""
async () => {
  const U = await import("/tool/unsaved.js");
  const { connText } = await import("/conn.js");
  const { loginHref, parseRoute } = await import("/router.js");
  const { HubClient } = await import("/socket.js");
  const out = {};
  const box = { id: "b1", type: "bbox", label: "car", geometry: { x: 1, y: 2, w: 3, h: 4 } };
  const objects = [box];
  // Which refusals are listed; what a row says.
  out.keep = [U.keepRefusal("stale_token", false), U.keepRefusal("invalid_op", false), U.keepRefusal("invalid_op", true)];
  let list = U.refuse([], { image: 5, op: { kind: "create", object: { id: "n1", type: "polygon", label: "" } }, code: "no_lock", message: "x", clientOpId: "c1", objects });
  list = U.refuse(list, { image: 5, op: { kind: "move_box", object_id: "b1", x: 0, y: 0, w: 1, h: 1 }, code: "invalid_op", message: "object b1 not found", clientOpId: "c2", objects });
  out.rows = list.map((e) => [e.kind, e.label, e.reason]);
  out.summary = [U.summary(1), U.summary(3)];
  // Re-apply is offered when the image is free (or mine), online, with entries for it.
  const base = { entries: list, image: 5, online: true, canLabel: true, readOnly: true, holder: null };
  out.can = [U.canReapply(base), U.canReapply({ ...base, holder: { id: 2 } }), U.canReapply({ ...base, online: false }),
             U.canReapply({ ...base, image: 6 }), U.canReapply({ ...base, holder: { id: 2 }, readOnly: false })];
  // The plan: the create applies; a move of an object the other labeler deleted is not forced.
  const p = U.plan(list, []);
  out.plan = [p.send.map((e) => e.key), p.stale.map((e) => [e.key, e.reason])];
  out.planKept = U.plan(list, objects).send.map((e) => e.key);
  out.batch = U.missing({ kind: "batch", ops: [{ kind: "create", object: { id: "z" } }, { kind: "delete", object_id: "q" }] }, []);
  out.json = JSON.parse(U.asJson(list.slice(0, 1)));
  // The pill.
  out.pill = [connText("online", { pending: 2 }), connText("reconnecting", { pending: 1 }), connText("reconnecting", { pending: 3 }),
              connText("reconnecting", { browserOnline: false }), connText("reconnecting"), connText("offline", { detail: "Please log in again." })];
  // Where login returns to.
  out.login = [loginHref("#/p/7/label/12?ids=1,2"), loginHref("#/login?next=x"), loginHref(""),
               parseRoute(loginHref("#/p/7/label/12?ids=1,2")).query.next];
  // The socket: drop() on a socket that looks open goes to reconnecting at once (no status code:
  // the server keeps the lease), and queued ops wait in the outbox.
  const sockets = [];
  class FakeWs { constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.closes = []; sockets.push(this); }
                 send(t) { this.sent.push(JSON.parse(t)); } close(...a) { this.closes.push(a); this.readyState = 3; } }
  const states = [];
  const hub = new HubClient({ url: "ws://x", project: 1, WebSocketImpl: FakeWs, onState: (s) => states.push(s), heartbeatMs: 1e9 });
  const pendings = [];
  hub.onPending = (n) => pendings.push(n);
  hub.connect();
  const ws = sockets[0];
  ws.readyState = 1; ws.onopen();
  ws.onmessage({ data: JSON.stringify({ type: "ack", id: ws.sent[0].id, seq: 3, user: { id: 1 }, privileges: ["label"] }) });
  await Promise.resolve(); await Promise.resolve();
  hub.drop();
  hub.sendOp(9, { kind: "delete", object_id: "b1" }).catch(() => {});
  out.sock = [states.slice(), ws.closes, hub.pending, pendings, ws.sent.length];
  hub.reconnectNow();
  out.reconnected = sockets.length;
  hub.close();
  return out;
}
"""


def test_unsaved_rules_pill_and_socket_drop_in_the_page(browser: Any, live: Live) -> None:
    context = browser.new_context()
    live.closers.append(context.close)
    page = context.new_page()
    page.goto(live.url + "/#/login")
    out = page.evaluate(RULES)
    assert out["keep"] == [True, False, True]
    assert out["rows"] == [["create", "Polygon “no label”", "the lock was lost while offline (someone else had the image)"],
                           ["move_box", "Box “car”", "it no longer applies (object b1 not found)"]]
    assert out["summary"] == ["1 edit was not saved", "3 edits were not saved"]
    assert out["can"] == [True, False, False, False, True]
    assert out["plan"] == [["c1"], [["c2", "it no longer applies: its object was deleted meanwhile"]]]
    assert out["planKept"] == ["c1", "c2"]
    assert out["batch"] == "its object was deleted meanwhile"
    assert out["json"] == [{"image": 5, "op": {"kind": "create", "object": {"id": "n1", "type": "polygon", "label": ""}},
                            "reason": "the lock was lost while offline (someone else had the image)"}]
    assert out["pill"] == ["Live", "Offline — 1 edit waiting", "Offline — 3 edits waiting", "Offline", "Reconnecting…",
                           "Offline — Please log in again."]
    assert out["login"] == ["#/login?next=%23%2Fp%2F7%2Flabel%2F12%3Fids%3D1%2C2", "#/login", "#/login", "#/p/7/label/12?ids=1,2"]
    assert out["sock"] == [["connecting", "online", "reconnecting"], [[]], 1, [1], 1]
    assert out["reconnected"] == 2
