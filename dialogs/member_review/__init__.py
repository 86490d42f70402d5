"""The member review (M1, M2, E2, E4, S6, M3): mode choice, list, file, summary, submission.

Steps: ``members.start`` (how many members; 1 列表 / 2 导入) → ``members.list`` (pages, marks,
search, remarks) or ``members.file`` (template, upload link, files) → ``members.summary`` →
``members.confirm`` (only above the high-removal threshold: "确认删除 N 人") → ``members.done``.

A file (an ``upload`` event) is taken at any of these steps, also in the middle of the list;
it is parsed in a limited child process while the unit's members load from the database.

Cursor data: :class:`~dialogs.state.ReviewData` (set by the unit review: ``rid``, ``uid``,
``unit``, ``kind``) and this flow's :class:`~dialogs.state.MemberData` (``page``, the list page;
``pending``, an upload with errors waiting for 接受; ``quiet``, a one-off flag).

The modules: :mod:`.parsing` (the list's answers), :mod:`.views` (what the list shows),
:mod:`.files` (template, link, a file's checks and report), :mod:`.base` (what every member
step shares), :mod:`.marking` (start, list, file steps), :mod:`.summary` (summary, confirmation,
submission, done). Importing the package registers the steps in that order.
"""

from __future__ import annotations

from dialogs.member_review import marking, summary
from dialogs.member_review.base import MemberStep, ensure_review
from dialogs.member_review.files import (
    apply_and_say,
    file_summary_lines,
    handle_upload,
    rejection_text,
    send_template,
    upload_link,
)
from dialogs.member_review.marking import FileStep, ListStep, Start
from dialogs.member_review.parsing import MAX_PER_COMMAND, Unclear, parse_indices, parse_mark
from dialogs.member_review.summary import ConfirmHigh, Done, SummaryStep, submit, summary_lines
from dialogs.member_review.views import SEARCH_LIMIT, SHOW_LIMIT, entry_line, share_text, who

__all__ = [
    "MAX_PER_COMMAND",
    "SEARCH_LIMIT",
    "SHOW_LIMIT",
    "ConfirmHigh",
    "Done",
    "FileStep",
    "ListStep",
    "MemberStep",
    "Start",
    "SummaryStep",
    "Unclear",
    "apply_and_say",
    "ensure_review",
    "entry_line",
    "file_summary_lines",
    "handle_upload",
    "marking",
    "parse_indices",
    "parse_mark",
    "rejection_text",
    "send_template",
    "share_text",
    "submit",
    "summary",
    "summary_lines",
    "upload_link",
    "who",
]
