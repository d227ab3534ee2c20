"""A remote agent's stub-queue marks applied to the user's real queue (ralphnb.loop.marks)."""

from __future__ import annotations

from ralphnb.loop.marks import added_task_fields, apply_queue_marks


def test_done_mark_completes_without_archiving_and_keeps_the_agents_notes(queue_repo):
    q = queue_repo
    tid = q.add("work").id
    q.start(tid)
    apply_queue_marks(q, tid, {"status": "done", "notes": ["did it", "tests pass"], "added": []})
    t = q.get(tid)
    assert t.status == "done" and t.completed_at
    assert t.notes == ["did it\ntests pass"]
    assert [x.id for x in q.tasks] == [tid] and q.done == []  # archived only after the merge


def test_reject_mark_rejects_with_the_notes(queue_repo):
    q = queue_repo
    tid = q.add("work").id
    apply_queue_marks(q, tid, {"status": "rejected", "notes": ["not needed"], "added": []})
    assert [(t.id, t.status, t.notes) for t in q.done] == [(tid, "rejected", ["not needed"])]


def test_added_tasks_get_new_ids_and_lose_links_to_stub_only_ids(queue_repo):
    q = queue_repo
    tid = q.add("work").id  # RQ-0001; the stub queue held only this task
    theirs = [q.add(f"user task {i}").id for i in range(3)]  # RQ-0002..4 in the user's queue
    added = [  # the agent's follow-ups got RQ-0002 and RQ-0003 in its stub
        {
            "id": "RQ-0002",
            "title": "follow-up",
            "status": "todo",
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "priority": "high",
            "depends_on": [tid, "RQ-0003"],
            "relates_to": ["RQ-0003"],
            "parent_id": "RQ-0003",
        },
        {"id": "RQ-0003", "title": "", "parent_id": tid},
    ]
    apply_queue_marks(q, tid, {"status": None, "notes": [], "added": added})
    new = {t.title: t for t in q.tasks if t.id not in (tid, *theirs)}
    assert {t.id: title for title, t in new.items()} == {
        "RQ-0005": "follow-up",
        "RQ-0006": "untitled",
    }
    follow = new["follow-up"]
    assert follow.priority == "high" and follow.created_at != "2020-01-01T00:00:00Z"
    assert follow.depends_on == [tid] and follow.relates_to == [] and not follow.parent_id
    assert new["untitled"].parent_id == tid
    assert [q.get(i).title for i in theirs] == ["user task 0", "user task 1", "user task 2"]
    assert q.get(tid).status == "todo"  # no status mark: the task is left as it was


def test_added_task_fields_drop_what_the_users_queue_sets_itself():
    fields = added_task_fields(
        {"id": "RQ-0009", "title": "t", "status": "done", "completed_at": "x", "tags": ["a"]},
        "RQ-0001",
    )
    assert fields == {"tags": ["a"]}
