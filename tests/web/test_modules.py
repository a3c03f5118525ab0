"""The browser app's pure modules, imported and checked inside Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Live

pytestmark = pytest.mark.browser

CHECKS = r"""
async () => {
  const vp = await import("/tool/viewport.js");
  const rle = await import("/tool/rle.js");
  const ops = await import("/tool/ops.js");
  const geom = await import("/tool/geom.js");
  const tools = await import("/tool/tools.js");
  const keys = await import("/tool/keys.js");
  const spatial = await import("/tool/spatial.js");
  const sel = await import("/views/selection.js");
  const router = await import("/router.js");
  const labelOps = await import("/views/_labelops.js");
  const objview = await import("/tool/objview.js");
  const transfer = await import("/views/transfer.js");
  const jobsView = await import("/views/jobs.js");
  const out = {};
  // The jobs panel's list, loaded while events arrive: a job heard meanwhile stays (the list
  // was read before it was queued), a newer event state wins, an unheard job missing from the
  // list has ended and goes.
  const job = (id, status, updated_at) => ({ id, status, updated_at, progress: { done: 0, total: 0 } });
  const shownJobs = new Map([[1, job(1, "queued", "t1")], [2, job(2, "running", "t5")], [3, job(3, "running", "t1")]]);
  const merged = jobsView.mergeLoaded(shownJobs, [job(2, "running", "t2"), job(4, "queued", "t1")], new Set([1, 2]));
  out.mergedJobs = [...merged.values()].sort((a, b) => a.id - b.id).map((j) => `${j.id}:${j.updated_at}`);
  // The export dialog's "BMP masks" is the masks format with BMP files.
  out.bmpUrl = transfer.exportUrl(7, "masks:bmp", "all");
  // The object list's filter: a label (or none), and words that all occur in the label, id, type
  // or attribute text, case-insensitive; hidden / locked sets per image, kept in sessionStorage.
  const listed = [
    { id: "a1", type: "bbox", label: "car", attributes: { color: "Red", doors: 4 } },
    { id: "b2", type: "polygon", label: "tree", attributes: {} },
    { id: "c3", type: "point", label: "", attributes: { note: "red light" } },
    { id: "d4", type: "bbox", label: "carpet", occluded: true },
  ];
  const pick = (f) => objview.filterIndices(listed, f).map((i) => listed[i].id).join();
  out.filters = [pick({}), pick({ label: "car" }), pick({ label: objview.NO_LABEL }), pick({ text: "RED" }), pick({ text: "car red" }),
    pick({ text: "doors=4" }), pick({ text: "box" }), pick({ text: "b2" }), pick({ text: "occluded" }), pick({ label: "tree", text: "car" })];
  out.targets = [objview.opTargets(ops.setLabel("a1", "x")), objview.opTargets(ops.batch([ops.remove("a1"), ops.create(listed[1])])), objview.opTargets(ops.rasterizeAll())];
  sessionStorage.clear();
  const ov = objview.createObjectView(sessionStorage);
  ov.load("7.1");
  const before = ov.visible(listed);
  ov.toggleHidden("b2"); ov.toggleLocked("a1");
  out.view = [before === listed, ov.visible(listed).map((o) => o.id).join(), ov.pickable(listed).map((o) => o.id).join(),
    ov.visible(listed) === ov.visible(listed), ov.lockedBy(ops.setLabel("a1", "x")), ov.lockedBy(ops.setLabel("c3", "x")), ov.lockedBy(ops.rasterizeAll())];
  const other = objview.createObjectView(sessionStorage);
  other.load("7.1");
  const again = [other.isHidden("b2"), other.isLocked("a1")];
  other.load("7.2");
  out.stored = [...again, other.isHidden("b2"), other.counts()];
  ov.showAll(); ov.unlockAll();
  out.cleared = [ov.counts(), ov.visible(listed) === listed];
  // viewport: fit centers, zoomAt keeps the point under the cursor, round trip.
  const f = vp.fit(200, 100, 420, 232, 10);
  out.fit = [f.scale, f.x, f.y];
  const z = vp.zoomAt(f, 2, 100, 50);
  out.zoomFixed = vp.toImage(z, 100, 50).map((v) => +v.toFixed(6)).join() === vp.toImage(f, 100, 50).map((v) => +v.toFixed(6)).join();
  // RLE: pycocotools' string for a known mask, round trip, empty mask.
  const m = new Uint8Array([0, 1, 1, 1, 0, 0]);  // 2 x 3 row-major
  const enc = rle.encodeMask(m, 2, 3);
  out.rle = enc;
  out.rleBack = Array.from(rle.decodeMask(enc)).join("");
  out.empty = rle.emptyRle(480, 640);
  out.counts = rle.decodeCounts(rle.encodeCounts([5, 120000, 3, 7, 0, 65536]));
  // ops: local application of vertex edits and holes.
  let objs = [{ id: "a", type: "polygon", label: "", geometry: ops.polygonGeometry([[0, 0], [10, 0], [10, 10], [0, 10]]) }];
  objs = ops.applyOp(objs, ops.insertVertex("a", { part: 0, hole: null, index: 1 }, [5, -1]));
  objs = ops.applyOp(objs, ops.addHole("a", 0, [[2, 2], [4, 2], [4, 4]]));
  objs = ops.applyOp(objs, ops.translate("a", 1, 1));
  out.poly = objs[0].geometry;
  // Object sources (docs/protocol.md): an op's `sources` and set_source apply here; my own edit
  // of a model's object makes it mine at once; a model's object is drawn dashed.
  const canvas = await import("/tool/canvas.js");
  const model = [{ id: "m", type: "bbox", label: "cat", source: "auto", geometry: { x: 1, y: 1, w: 4, h: 4 } },
    { id: "p", type: "bbox", label: "cat", source: "manual", geometry: { x: 6, y: 1, w: 4, h: 4 } }];
  const nudge = ops.moveBox("m", { x: 2, y: 2, w: 4, h: 4 });
  const srcs = (list) => list.map((o) => `${o.id}:${o.source}`).join();
  out.sources = [
    srcs(ops.applyOp(model, { ...nudge, sources: { m: "manual" } })),
    srcs(ops.applyOp(model, { kind: "set_source", sources: { m: "manual", p: "auto", gone: "auto" } })),
    ops.isLocal({ kind: "set_source", sources: {} }),
    srcs(ops.asMine(ops.applyOp(model, nudge), nudge)),
    ops.asMine(model, ops.setLabel("p", "dog")) === model,
    srcs(ops.asMine(ops.applyOp(model, ops.create({ ...model[0], id: "copy" })), ops.create({ ...model[0], id: "copy" }))),
    model.map(ops.fromModel), model.map((o) => canvas.lineDash(o).length > 0)];
  out.box = ops.bboxFrom([10, 10], [0, 4], 2);
  // tools: a bbox drag creates one create op; a polygon with Enter; N forces a new object.
  const env = { objects: [], tol: 2, label: "car", aspect: null, size: [100, 100], masks: () => null };
  let st = tools.initialState();
  let r = tools.down(st, env, [10, 10]); r = tools.move(r.st, env, [30, 25]); r = tools.up(r.st, env, [30, 25]);
  out.bboxOp = [r.ops[0].kind, r.ops[0].object.type, r.ops[0].object.geometry, r.ops[0].object.label];
  // The box tool draws a box inside a box (a drag), a click selects it; its handles still resize.
  const big = { id: "big", type: "bbox", label: "car", geometry: { x: 0, y: 0, w: 50, h: 50 } };
  const envBox = { ...env, objects: [big] };
  r = tools.down(tools.initialState(), envBox, [10, 10]); r = tools.move(r.st, envBox, [30, 30]); r = tools.up(r.st, envBox, [30, 30]);
  out.boxInBox = r.ops.map((op) => [op.kind, op.object?.geometry]);
  r = tools.down(tools.initialState(), envBox, [20, 20]); r = tools.up(r.st, envBox, [20, 20]);
  out.boxClick = [r.ops.length, r.st.selected];
  r = tools.down(r.st, envBox, [50, 50]); r = tools.move(r.st, envBox, [60, 70]); r = tools.up(r.st, envBox, [60, 70]);
  out.boxResize = r.ops.map((op) => op.kind);
  st = tools.setTool(tools.initialState(), "polygon");
  for (const p of [[1, 1], [20, 1], [20, 20]]) st = tools.down(st, env, p).st;
  r = tools.command(st, env, "finish");
  out.polyOp = r.ops[0].object.geometry;
  // spatial: a grid over 400 boxes (and one huge polygon) answers a window query exactly and in
  // list order; an ordered() list is the same array for the same input.
  const many = [];
  for (let i = 0; i < 400; i++) many.push({ id: `s${i}`, type: "bbox", geometry: { x: (i % 20) * 10, y: Math.floor(i / 20) * 10, w: 5, h: 5 } });
  many.splice(7, 0, { id: "big", type: "polygon", geometry: { parts: [{ exterior: [[-50, -50], [500, -50], [500, 500]] }] } });
  many.push({ id: "r", type: "rpy", geometry: { roll: 0, pitch: 0, yaw: 0 } });
  const idx = spatial.buildIndex(many);
  const hits = spatial.query(idx, 22, 22, 41, 33);
  const brute = many.map((o, i) => [o, i]).filter(([o]) => o.type === "bbox" && o.geometry.x <= 41 && o.geometry.x + 5 >= 22 && o.geometry.y <= 33 && o.geometry.y + 5 >= 22).map(([, i]) => i);
  out.spatial = [hits.join() === [7, ...brute].sort((a, b) => a - b).join(), brute.length, spatial.query(idx, 1000, 1000, 1001, 1001).length];
  out.orderedSame = ops.ordered(many) === ops.ordered(many);
  // renderer: 3,000 boxes. Fitted, one layer holds them all; a zoom step shows it scaled (no
  // redraw, stale) until the view rests; a close-up of few objects is redrawn at once; zooming
  // out again falls back to the every-object layer; an edit of another object redraws.
  const renderer = (await import("/tool/renderer.js")).createRenderer();
  const grid = Array.from({ length: 3000 }, (_, i) => ({ id: `r${i}`, type: "bbox", label: "a", geometry: { x: (i % 60) * 20, y: Math.floor(i / 60) * 18, w: 14, h: 12 } }));
  const rctx = new OffscreenCanvas(600, 450).getContext("2d");
  const scene = { image: null, imgW: 1200, imgH: 900, objects: grid, colors: { a: "#ff0000" }, selectedId: null, st: {}, label: "", width: 600, height: 450, dpr: 1, cursors: [], bitmapFor: () => null };
  const fitted = vp.fit(1200, 900, 600, 450);
  const frame = (v, extra = {}) => { const f = renderer.draw(rctx, { ...scene, vp: v, ...extra }); return [f.drawn, f.stale, renderer.stats.renders]; };
  const step = vp.zoomAt(fitted, 1.5, 300, 225), corner = vp.zoomAt(fitted, 8, 0, 0);
  const moved = grid.map((o, i) => (i === 5 ? { ...o, geometry: { ...o.geometry, x: 101 } } : o));
  out.renderer = [frame(fitted), frame(step), frame(step, { settle: true }), frame(corner), frame(vp.zoomAt(fitted, 1.2, 300, 225)),
    frame(vp.zoomAt(fitted, 1.2, 300, 225), { objects: moved }), frame(fitted, { objects: moved, selectedId: "r9" })];
  out.hit = geom.topHit([{ id: "b", type: "bbox", geometry: { x: 0, y: 0, w: 5, h: 5 } }], [3, 3], 1)?.id;
  // keys, selection, router, classification rules.
  out.keys = [keys.commandFor({ key: "z", ctrlKey: true }), keys.commandFor({ key: "Z", ctrlKey: true, shiftKey: true }), keys.commandFor({ key: "3" }), keys.commandFor({ key: "h" })];
  let s = sel.emptySelection();
  s = sel.clickSelect(s, [1, 2, 3, 4], 2); s = sel.clickSelect(s, [1, 2, 3, 4], 4, { shift: true });
  out.sel = [...s.ids];
  out.route = [router.parseRoute("#/p/7/label/12?ids=1,2"), router.href("tool", { project: 7 }, { ids: [1, 2] })];
  let labels = [];
  for (const op of [{ kind: "add_label", label: "a" }, { kind: "add_label", label: "b" }, { kind: "remove_label", label: "b" }, { kind: "add_label", label: "c" }, { kind: "set_default_label", label: "a" }]) {
    labels = labelOps.applyLabelOp(labels, op);
  }
  out.labels = labels.map((l) => l.label + (l.is_default ? "*" : ""));
  // server/classification.py's rules: the first label is the default, a second one is not;
  // adding one the image has makes it the default; removing the default promotes the earliest.
  const rules = [];
  let cls = [];
  for (const op of [{ kind: "add_label", label: "x" }, { kind: "add_label", label: "y" }, { kind: "add_label", label: "z" },
    { kind: "add_label", label: "y" }, { kind: "remove_label", label: "y" }]) {
    cls = labelOps.applyLabelOp(cls, op);
    rules.push(cls.map((l) => l.label + (l.is_default ? "*" : "")).join(" "));
  }
  out.rules = rules;
  // The `?` overlay lists every key the tool answers to, in the row of the command it runs.
  const shown = { ArrowRight: "→", ArrowLeft: "←", Escape: "Esc", "-": "\u2212" };
  const combos = [...Object.keys(keys.SIMPLE).map((k) => [k, keys.SIMPLE[k]]), ...[..."123456789"].map((d) => [d, `label:${d}`]),
    ["Ctrl+Z", "undo"], ["Ctrl+Shift+Z", "redo"], ["Ctrl+Y", "redo"], ["Ctrl+S", "save"],
    ["Ctrl+Enter", "done-next"], ["Ctrl+Shift+Enter", "done"]];
  out.undocumented = combos.filter(([key, cmd]) => {
    const row = keys.KEYS.find(([, c]) => c && (cmd === c || cmd.startsWith(c + "-") || cmd.startsWith(c + ":")));
    if (!row) return true;
    const parts = row[0].toLowerCase().split(" / ");
    const name = (shown[key] || key).toLowerCase();
    return !(parts.includes(name) || (/^[1-9]$/.test(key) && parts.includes("1 … 9")));
  }).map(([key, cmd]) => `${key} (${cmd})`);
  const handled = combos.map(([, cmd]) => cmd);
  out.unhandled = keys.KEYS.filter(([, c]) => c && !["help", "pan", "zoom"].includes(c) && !handled.some((cmd) => cmd === c || cmd.startsWith(c + "-") || cmd.startsWith(c + ":"))).map(([k]) => k);
  const root = document.createElement("div");
  document.body.append(root);
  keys.shortcutOverlay(root, keys.KEYS);
  out.overlayRows = root.querySelectorAll("#shortcuts tr").length;
  out.keyRows = keys.KEYS.length;
  // Workflow: which buttons show, and an image item after live state events.
  const wf = await import("/views/workflow.js");
  out.wfActions = [wf.actionsFor("in_progress", ["view", "label"], { holdsLock: true }), wf.actionsFor("in_progress", ["view", "label"]),
    wf.actionsFor("done", ["view", "review"]), wf.actionsFor("accepted", ["view", "label", "review", "manage_members"])];
  out.wfKeys = [keys.commandFor({ key: "Enter", ctrlKey: true }), keys.commandFor({ key: "Enter", ctrlKey: true, shiftKey: true })];
  const item = wf.withState({ id: 5, state: "done" }, { type: "op", user: 3, op: { kind: "state", action: "reject", from: "done", to: "rejected", comment: "fix" } }, { 3: "Sue" });
  out.wfItem = [item.state, item.review, wf.withState(item, { type: "lock", image: 5, image_state: "in_progress" }).state];
  return out;
}
"""


def test_pure_modules_in_the_page(browser: Any, live: Live) -> None:
    context = browser.new_context()
    live.closers.append(context.close)
    page = context.new_page()
    page.goto(live.url + "/#/login")
    out = page.evaluate(CHECKS)
    assert out["filters"] == ["a1,b2,c3,d4", "a1", "c3", "a1,c3", "a1", "a1", "a1,d4", "b2", "d4", ""]
    assert out["targets"] == [["a1"], ["a1"], ["*"]]
    assert out["view"] == [True, "a1,c3,d4", "c3,d4", True, "a1", None, "a1"]
    assert out["stored"] == [True, True, False, {"hidden": 0, "locked": 0}]
    assert out["cleared"] == [{"hidden": 0, "locked": 0}, True]
    assert out["bmpUrl"] == "/api/v1/projects/7/export?format=masks&mask_format=bmp"
    assert out["fit"] == [2, 10, 16]
    assert out["zoomFixed"] is True
    # Column-major runs of [[0,1,1],[1,0,0]] are 1,2,1,1,1: the same string as pycocotools.
    assert out["rle"] == {"size": [2, 3], "counts": _pycoco_mask()}
    assert out["rleBack"] == "011100"
    assert out["empty"] == {"size": [480, 640], "counts": _pycoco_empty(480 * 640)}
    assert out["counts"] == [5, 120000, 3, 7, 0, 65536]
    assert out["poly"] == {"parts": [{"exterior": [[1, 1], [6, 0], [11, 1], [11, 11], [1, 11]],
                                      "holes": [[[3, 3], [5, 3], [5, 5]]]}]}
    assert out["box"] == {"x": -2, "y": 4, "w": 12, "h": 6}  # anchored at the first corner
    assert out["bboxOp"] == ["create", "bbox", {"x": 10, "y": 10, "w": 20, "h": 15}, "car"]
    assert out["boxInBox"] == [["create", {"x": 10, "y": 10, "w": 20, "h": 20}]]
    assert out["boxClick"] == [0, "big"]
    assert out["boxResize"] == ["move_box"]
    assert out["polyOp"] == {"parts": [{"exterior": [[1, 1], [20, 1], [20, 20]], "holes": []}]}
    assert out["hit"] == "b"
    assert out["spatial"] == [True, 6, 0] and out["orderedSame"] is True
    full, scaled, sharp, close, back, edited, picked = out["renderer"]
    assert full == [3000, False, 1] and scaled == [3000, True, 1] and sharp == [3000, False, 2]
    assert 0 < close[0] < 300 and close[1:] == [False, 3]  # few objects: redrawn while moving
    assert back == [3000, True, 3]  # the every-object layer, scaled: no redraw of 3,000 boxes
    assert edited == [3000, False, 4]  # another object changed: the layer is drawn again
    assert picked == [3000, False, 5]  # the selected object leaves the layer (drawn on top)
    assert out["mergedJobs"] == ["1:t1", "2:t5", "4:t1"]
    assert out["keys"] == ["undo", "redo", "label:3", "hole"]
    assert out["sel"] == [2, 3, 4]
    assert out["route"][0] == {"name": "tool", "params": {"project": 7, "image": 12}, "query": {"ids": "1,2"}}
    assert out["route"][1] == "#/p/7/label?ids=1%2C2"
    assert out["labels"] == ["a*", "c"]
    assert out["rules"] == ["x*", "x* y", "x* y z", "x y* z", "x* z"]
    assert out["undocumented"] == [] and out["unhandled"] == []
    assert out["sources"] == ["m:manual,p:manual", "m:manual,p:auto", True, "m:manual,p:manual", True,
                              "m:auto,p:manual,copy:manual", [True, False], [True, False]]
    assert out["overlayRows"] == out["keyRows"]
    assert out["wfActions"] == [["done", "done-next"], [], ["accept", "reject"], ["reopen"]]
    assert out["wfKeys"] == ["done-next", "done"]
    assert out["wfItem"] == ["rejected", {"by": {"id": 3, "name": "Sue"}, "comment": "fix"}, "in_progress"]


def _pycoco_empty(n: int) -> str:
    from server.geometry.rle import counts_to_string

    return counts_to_string([n])


def _pycoco_mask() -> str:
    import numpy as np

    from server.geometry.rle import counts_to_string, mask_counts

    return counts_to_string(mask_counts(np.array([[0, 1, 1], [1, 0, 0]])))
