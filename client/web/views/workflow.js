// The image workflow in the browser: state names, which actions a user sees (pure), the tool's
// workflow bar (Done, Done and next, Accept, Reject with a comment, Reopen) and the tile badge.
// The server decides (server/workflow.py); these only offer what it would allow.
import { h } from "../dom.js";

export const STATES = ["new", "in_progress", "done", "accepted", "rejected"];
export const STATE_TEXT = { new: "New", in_progress: "In progress", done: "Done", accepted: "Accepted", rejected: "Rejected" };

/** The workflow actions offered for an image in `state` (pure). */
export function actionsFor(state, privileges, { holdsLock = false } = {}) {
  const can = (p) => privileges.includes(p);
  const out = [];
  if (can("label") && holdsLock && ["new", "in_progress", "rejected"].includes(state)) out.push("done", "done-next");
  if (can("review") && state === "done") out.push("accept", "reject");
  if (can("manage_members") && ["done", "accepted", "rejected"].includes(state)) out.push("reopen");
  return out;
}

/** The image item after a state op or a lock event that started it (pure). */
export function withState(image, msg, people = {}) {
  if (msg.type === "lock" && msg.image_state) return { ...image, state: msg.image_state };
  const op = msg.op;
  if (msg.type !== "op" || op?.kind !== "state") return image;
  const out = { ...image, state: op.to };
  const by = msg.user !== undefined ? { id: msg.user, name: people[msg.user] || `user ${msg.user}` } : null;
  if (op.action === "done") out.done_by = by;
  if (op.action === "accept" || op.action === "reject") out.review = { by, comment: op.comment ?? null };
  if (op.action === "reopen" && op.comment) out.review = { by, comment: op.comment };
  return out;
}

export function stateBadge(state) {
  return h("span", { class: `badge state state-${state || "new"}`, dataset: { state: state || "new" }, title: `Workflow: ${STATE_TEXT[state] || state}` }, STATE_TEXT[state] || state);
}

/** The tool's workflow bar. `session` is the image session (image, next()); `onChange` redraws. */
export function createWorkflowBar({ ctx, project, session, say, onChange }) {
  const el = h("div", { class: "toolbar workflow-bar", id: "workflow", "aria-label": "Workflow" });
  let comment = "";

  async function act(action, { next = false } = {}) {
    const img = session.image;
    if (!img) return;
    const fields = { image: img.id, action: action === "done-next" ? "done" : action, expect: img.state };
    if (fields.action === "done") fields.token = ctx.hub.tokens.get(img.id);
    if (comment.trim()) fields.comment = comment.trim();
    if (action === "reject" && !fields.comment) { say("Write what to fix in the comment box first."); el.querySelector("#review-comment")?.focus(); return; }
    try {
      await ctx.hub.whenIdle();  // "done" means: done with every edit on the server
      const ack = await ctx.hub.request("set_state", fields);
      session.image = { ...session.image, state: ack.state };
      comment = "";
      say({ done: "Marked done.", accept: "Accepted.", reject: "Rejected: the labeler sees your comment.", reopen: "Reopened." }[fields.action]);
      onChange();
      // A reviewer goes on to the next image to review; "Done and next" to the next to label.
      if (next || action === "done-next" || (session.queue === "review" && ["accept", "reject"].includes(action))) await session.next();
      else if (action === "done") await session.handOver();  // the review queue skips held images
    } catch (err) {
      say(err.code === "conflict" ? `${err.message} — the image is shown as it is now.` : err.message);
      if (err.code === "conflict") session.refreshItem?.();
    }
  }

  function update() {
    const img = session.image;
    if (!img) { el.replaceChildren(); return; }
    const actions = actionsFor(img.state, project.privileges, { holdsLock: !session.readOnly });
    const review = img.review?.comment && ["rejected", "in_progress", "done"].includes(img.state)
      ? h("span", { class: "review-comment", id: "review-note", role: "note" }, `Review${img.review.by ? ` by ${img.review.by.name}` : ""}: “${img.review.comment}”`) : "";
    const button = (action, text, title, cls = "") => actions.includes(action)
      ? h("button", { type: "button", class: cls, id: `wf-${action}`, title, onclick: () => act(action) }, text) : "";
    el.replaceChildren(
      h("strong", {}, "Image: "), stateBadge(img.state), review,
      button("done", "Done", "Mark this image done (Ctrl+Shift+Enter)"),
      button("done-next", "Done and next", "Mark done and go to the next image (Ctrl+Enter)", "primary"),
      actions.includes("reject") || actions.includes("reopen") ? h("input", { id: "review-comment", value: comment, size: 28, placeholder: "Comment for the labeler",
        "aria-label": "Comment for the labeler", oninput: (e) => { comment = e.target.value; } }) : "",
      button("accept", "Accept", "Accept this image (review)", "primary"),
      button("reject", "Reject", "Send it back with the comment (review)", "danger"),
      button("reopen", "Reopen", "Put it back in progress (manager)"));
  }

  return { el, update, act, has: (action) => !!session.image && actionsFor(session.image.state, project.privileges, { holdsLock: !session.readOnly }).includes(action) };
}
