"""S6: when a review removes "many" members and must be checked closely (one home for the rule).

High means at least ``review.high_removal_count`` members, or more than
``review.high_removal_ratio`` of the members the unit had before the review. Nothing removed is
never high. A unit with no members before (0 or unknown) that still removes someone counts as
removing all of them (100%): the figures do not add up, which is exactly what S6 asks the approver
to check ("勾选删除会员的信息较多的，要进行核实"); a needless check costs one confirmation, a missed
one lets an unexplained removal through.
"""

from __future__ import annotations

from storage.settings import Settings


def removal_share(removed: int, before: int | None) -> float:
    """The share of the members removed; 1.0 when something is removed from no members."""
    if removed <= 0:
        return 0.0
    return removed / before if before else 1.0


def is_high_removal(removed: int, before: int | None, settings: Settings) -> bool:
    """S6: at least ``high_removal_count`` removed, or more than ``high_removal_ratio``."""
    if removed <= 0:
        return False
    rules = settings.review
    if removed >= rules.high_removal_count:
        return True
    return removal_share(removed, before) > rules.high_removal_ratio
