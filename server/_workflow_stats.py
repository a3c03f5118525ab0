"""The supervisor's workflow figures (``GET .../stats`` → ``workflow``): work measured by states.

Counts by state; per person (images they marked done, by where those are now, reviews they made,
rejections they received); per label (objects, images with such objects, images classified);
review throughput per day and the rejection rate. Labels given at upload count nowhere as work
done: done is a state a person set, read from the images and the op log (kind ``state``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Image, ImageLabel, LabelDef, LabelObjectRow, OpLogEntry, User
from server.workflow import State


async def state_counts(session: AsyncSession, project_id: int) -> dict[str, int]:
    """Images by workflow state, every state present (zero when none)."""
    rows = await session.execute(select(Image.state, func.count()).where(
        Image.project_id == project_id).group_by(Image.state))
    counts = {s.value: 0 for s in State}
    counts.update({state: int(n) for state, n in rows})
    return counts


def _rate(rejected: int, reviewed: int) -> float | None:
    return round(rejected / reviewed, 3) if reviewed else None


async def workflow_stats(session: AsyncSession, project_id: int) -> dict[str, Any]:
    states = await state_counts(session, project_id)
    person: dict[int, dict[str, int]] = defaultdict(lambda: {
        "in_progress": 0, "done": 0, "accepted": 0, "rejected": 0, "reviewed": 0,
        "rejections_received": 0, "reviews_received": 0})
    # Where the images each person marked done are now.
    for done_by, state, n in (await session.execute(
            select(Image.done_by, Image.state, func.count())
            .where(Image.project_id == project_id, Image.done_by.is_not(None))
            .group_by(Image.done_by, Image.state))):
        if done_by is not None and state in ("done", "accepted", "rejected", "in_progress"):
            person[done_by][state] += int(n)
    # Reviews from the log, each credited to the reviewer and to who marked the image done then.
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: {"accepted": 0, "rejected": 0})
    done_by_now: dict[int, int] = {}
    log = await session.execute(
        select(OpLogEntry.image_id, OpLogEntry.user_id, OpLogEntry.op, OpLogEntry.created_at)
        .where(OpLogEntry.project_id == project_id, OpLogEntry.kind == "state")
        .order_by(OpLogEntry.seq))
    for image_id, user_id, op, created_at in log:
        action = op.get("action") if isinstance(op, dict) else None
        if image_id is None or user_id is None:
            continue
        if action == "done":
            done_by_now[image_id] = user_id
        elif action in ("accept", "reject"):
            outcome = "accepted" if action == "accept" else "rejected"
            per_day[created_at.date().isoformat()][outcome] += 1
            person[user_id]["reviewed"] += 1
            labeler = done_by_now.get(image_id)
            if labeler is not None:
                person[labeler]["reviews_received"] += 1
                person[labeler]["rejections_received"] += action == "reject"
    names = dict((await session.execute(select(User.id, User.name).where(
        User.id.in_(list(person))))).all()) if person else {}
    accepted = sum(d["accepted"] for d in per_day.values())
    rejected = sum(d["rejected"] for d in per_day.values())
    return {
        "states": states,
        "per_user": [{"user": {"id": uid, "name": names.get(uid, f"user {uid}")}, **v,
                      "rejection_rate": _rate(v["rejections_received"], v["reviews_received"])}
                     for uid, v in sorted(person.items())],
        "per_label": await _per_label(session, project_id),
        "review": {"accepted": accepted, "rejected": rejected,
                   "rejection_rate": _rate(rejected, accepted + rejected),
                   "per_day": [{"day": day, **v} for day, v in sorted(per_day.items())]},
    }


async def _per_label(session: AsyncSession, project_id: int) -> list[dict[str, Any]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"objects": 0, "images": 0,
                                                          "classified": 0})
    for label, objects, images in (await session.execute(
            select(LabelObjectRow.label, func.count(), func.count(distinct(LabelObjectRow.image_id)))
            .join(Image, Image.id == LabelObjectRow.image_id)
            .where(Image.project_id == project_id).group_by(LabelObjectRow.label))):
        out[label]["objects"], out[label]["images"] = int(objects), int(images)
    for name, classified in (await session.execute(
            select(LabelDef.name, func.count()).join(ImageLabel, ImageLabel.label_id == LabelDef.id)
            .where(LabelDef.project_id == project_id).group_by(LabelDef.name))):
        out[name]["classified"] = int(classified)
    return [{"label": name, **v} for name, v in sorted(out.items())]


__all__ = ["state_counts", "workflow_stats"]
