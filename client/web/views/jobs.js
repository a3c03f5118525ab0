// The dashboard's jobs panel: a progress bar per queued or running background job, kept live
// from `job` socket events (docs/protocol.md). The state change is a pure function (applyJob).
import { h } from "../dom.js";

const ACTIVE = new Set(["queued", "running"]);
const LINGER_MS = 4000;  // an ended job stays in view this long, showing how it ended

/** The jobs map (id -> job) after one job's new state; ids of ended jobs go to `ended`. */
export function applyJob(jobs, job) {
  const known = jobs.get(job.id);
  // Events from two processes may cross: never go back to an older state of a job.
  if (known && known.updated_at > job.updated_at) return jobs;
  if (!known && !ACTIVE.has(job.status)) return jobs;  // ended before we saw it: nothing to show
  const next = new Map(jobs);
  next.set(job.id, job);
  return next;
}

/** The jobs map after a list of the active jobs (`loaded`) comes back, given the ids whose
 * events arrived while it was on its way (`heard`). A job heard then is as new as the list or
 * newer (a job queued after the server read the list is missing from it), so it stays; any
 * other job the list leaves out has ended unheard and goes. */
export function mergeLoaded(jobs, loaded, heard) {
  let next = new Map();
  for (const job of loaded) next = applyJob(next, job);
  for (const id of heard) {
    const job = jobs.get(id);
    if (job) next = applyJob(next, job);
  }
  return next;
}

/** Percent done, or null when the total is not known yet. */
export function percent(job) {
  const { done, total } = job.progress || {};
  return total > 0 ? Math.min(100, Math.round((100 * done) / total)) : null;
}

export function jobsPanel({ ctx, pid, can }) {
  let jobs = new Map();
  const timers = new Map();
  const el = h("section", { class: "jobs", "aria-label": "Background jobs", hidden: true });

  function mayCancel(job) {
    return can.has("manage_members") || (ctx.me && job.created_by === ctx.me.id);
  }

  async function cancel(job) {
    try {
      update(await ctx.api.post(`/api/v1/projects/${pid}/jobs/${job.id}/cancel`));
    } catch (err) { ctx.toast(err.message); }
  }

  // One <li> per job, updated in place: progress events come many times a second, and a
  // button rebuilt between a press and its release never gets the click.
  const rows = new Map();  // id -> {li, bar, count, button}
  const list = h("ul", {});
  el.append(h("h3", {}, "Jobs"), list);

  function newRow(job) {
    const bar = h("progress", { "aria-label": `${job.kind} progress` });
    const count = h("span", { class: "job-count" });
    const button = h("button", { type: "button", title: "Cancel this job", onclick: () => cancel(jobs.get(job.id) || job) }, "Cancel");
    const li = h("li", { "data-job": job.id }, h("span", { class: "job-kind" }, job.kind), bar, count);
    return { li, bar, count, button };
  }

  function fill(r, job) {
    const pct = percent(job);
    const { done, total } = job.progress;
    r.li.className = `job ${job.status}`;
    if (total > 0) { r.bar.max = total; r.bar.value = done; } else r.bar.removeAttribute("value");
    r.count.textContent = job.status === "running" && pct !== null ? `${done}/${total}` : job.status;
    const cancellable = ACTIVE.has(job.status) && !job.cancel_requested && mayCancel(job);
    if (cancellable && !r.button.isConnected) r.li.append(r.button);
    if (!cancellable) r.button.remove();
  }

  function render() {
    el.hidden = jobs.size === 0;
    for (const [id, r] of rows) if (!jobs.has(id)) { r.li.remove(); rows.delete(id); }
    // Shown rows stay in id order and in place; a new one goes right after its predecessor.
    let prev = null;
    for (const job of [...jobs.values()].sort((a, b) => a.id - b.id)) {
      let r = rows.get(job.id);
      if (!r) {
        r = newRow(job);
        rows.set(job.id, r);
        list.insertBefore(r.li, prev ? prev.nextSibling : list.firstChild);
      }
      fill(r, job);
      prev = r.li;
    }
  }

  // Jobs seen ending: a quick job's events may arrive before the answer to the request that
  // queued it, and that older "queued" state must not bring it back.
  const ended = new Map();
  const loading = new Set();  // per list request on its way: the ids heard since it was sent
  function update(job) {
    for (const heard of loading) heard.add(job.id);
    if (!ACTIVE.has(job.status)) ended.set(job.id, job.updated_at);
    else if (ended.has(job.id) && ended.get(job.id) >= job.updated_at) return;
    jobs = applyJob(jobs, job);
    if (jobs.has(job.id) && !ACTIVE.has(job.status) && !timers.has(job.id)) {
      timers.set(job.id, setTimeout(() => { jobs.delete(job.id); timers.delete(job.id); render(); }, LINGER_MS));
    }
    render();
  }

  async function load() {
    const heard = new Set();
    loading.add(heard);
    el.setAttribute("aria-busy", "true");
    try {
      const body = await ctx.api.get(`/api/v1/projects/${pid}/jobs`, { status: "queued,running" });
      jobs = mergeLoaded(jobs, body.jobs, heard);
      render();
    } catch { /* the panel stays as it was; events keep it going */
    } finally {
      loading.delete(heard);
      if (!loading.size) el.removeAttribute("aria-busy");
    }
  }

  return {
    el, load,
    get: (id) => jobs.get(id),
    onEvent(msg) {
      if (msg.type === "job" && msg.job.project === Number(pid)) update(msg.job);
      // Once the socket has joined the project (the first time, and after each reconnect): a job
      // announced before that (queued after the first list was read) or while away is not sent again.
      if (msg.type === "_conn" && msg.state === "online") load();
    },
    stop() { for (const t of timers.values()) clearTimeout(t); },
  };
}

const FALLBACK_MS = 2000;
/** Calls `onEnd(job)` once the job has ended, from `job` events (`feed(msg)`) or, because on
 * SQLite a job queued and ended between two of the server's polls is never announced
 * (server/jobs/feed.py), from GET .../jobs/{id} every 2 s meanwhile. Returns {feed, stop}. */
export function watchJob(ctx, pid, jobId, onEnd) {
  let done = false;
  const end = (job) => { if (!done && !ACTIVE.has(job.status)) { done = true; clearInterval(timer); onEnd(job); } };
  const timer = setInterval(() => {
    ctx.api.get(`/api/v1/projects/${pid}/jobs/${jobId}`).then(end).catch(() => {});
  }, FALLBACK_MS);
  return {
    feed(msg) { if (msg.type === "job" && msg.job.id === jobId) end(msg.job); },
    stop() { done = true; clearInterval(timer); },
  };
}
