"""The member part of a review (M1, M2, E1-E4, S6): one use case a module.

- :mod:`.drafts`: the draft (load, guard, entries, shared errors); everything is saved to the
  draft at once: a mark is a :class:`Removal` row, a remark a :class:`RemarkEdit` row; nothing
  touches :class:`Member` until the final approval (M5).
- :mod:`.reasons`: the removal reasons and the upload's columns.
- :mod:`.numbering`: list numbers fixed for the life of the review; list, search, 已选.
- :mod:`.marks`: M1 marks in the list. :mod:`.remarks`: E4 remarks in joint unions.
- :mod:`.matching`: M2 a parsed file validated and matched (the 100,000-row hot path).
- :mod:`.files`: M2 an upload kept and applied as marks.
- :mod:`.submission`: S6 summary and confirmation, M3 submission.

The names below are the public surface (dialogs and tests import them from here).
"""

from services.member_review.drafts import (
    EDITABLE,
    REMARK_MAX,
    BadIndices,
    Entry,
    MembersLeft,
    Page,
    ReviewNotEditable,
    collection_paused,
    is_editable,
    load_review,
    local_time,
    member_count,
    operator_id_for,
    set_mode,
    union_of,
)
from services.member_review.files import (
    ApplyResult,
    apply_upload,
    find_upload,
    marked_count,
    record_upload,
    summary_of,
)
from services.member_review.marks import MarkResult, mark, unmark, unmark_all
from services.member_review.matching import (
    FileCheck,
    RowError,
    _match_clean,
    check_file,
    load_match_data,
    match_rows,
)
from services.member_review.numbering import (
    Numbers,
    last_number,
    list_numbers,
    list_page,
    marked,
    search,
)
from services.member_review.reasons import COLUMNS, REASON_LABELS, parse_reason
from services.member_review.remarks import clean_remark, missing_remarks, set_remark
from services.member_review.submission import (
    SUBMIT_TRIES,
    NotReady,
    SubmitRefused,
    Submitted,
    Summary,
    confirm_high_removal,
    submit,
    summary,
)
from services.removal_rules import is_high_removal
from services.validators import Invalid, check_id_cell, mask_id_number

__all__ = [
    "COLUMNS",
    "EDITABLE",
    "REASON_LABELS",
    "REMARK_MAX",
    "SUBMIT_TRIES",
    "ApplyResult",
    "BadIndices",
    "Entry",
    "FileCheck",
    "Invalid",
    "MarkResult",
    "MembersLeft",
    "NotReady",
    "Numbers",
    "Page",
    "ReviewNotEditable",
    "RowError",
    "SubmitRefused",
    "Submitted",
    "Summary",
    "_match_clean",
    "apply_upload",
    "check_file",
    "check_id_cell",
    "clean_remark",
    "collection_paused",
    "confirm_high_removal",
    "find_upload",
    "is_editable",
    "is_high_removal",
    "last_number",
    "list_numbers",
    "list_page",
    "load_match_data",
    "load_review",
    "local_time",
    "mark",
    "marked",
    "marked_count",
    "mask_id_number",
    "match_rows",
    "member_count",
    "missing_remarks",
    "operator_id_for",
    "parse_reason",
    "record_upload",
    "search",
    "set_mode",
    "set_remark",
    "submit",
    "summary",
    "summary_of",
    "union_of",
    "unmark",
    "unmark_all",
]
