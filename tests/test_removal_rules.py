"""S6: one high-removal rule (services.removal_rules), shared by the card, the summary and the
progress view. Pure and fast: no database."""

from services import cards, member_review, progress
from services.removal_rules import is_high_removal
from storage.settings import Settings


def _settings(ratio: float = 0.2, count: int = 50) -> Settings:
    s = Settings()
    s.review.high_removal_ratio = ratio
    s.review.high_removal_count = count
    return s


def test_nothing_removed_is_never_high() -> None:
    s = _settings()
    assert not is_high_removal(0, 0, s)
    assert not is_high_removal(0, 10, s)


def test_unit_with_no_members_counts_as_all_removed() -> None:
    # 0 members before and something removed: the share is 100% -> high (S6: check it).
    s = _settings()
    assert is_high_removal(1, 0, s)
    assert is_high_removal(1, None, s)


def test_ratio_boundary_is_strictly_more_than() -> None:
    s = _settings(ratio=0.2, count=50)
    assert not is_high_removal(2, 10, s)  # exactly 20%: not more than
    assert is_high_removal(3, 10, s)  # 30%


def test_count_boundary_is_at_least() -> None:
    s = _settings(ratio=1.0, count=5)
    assert not is_high_removal(4, 1000, s)
    assert is_high_removal(5, 1000, s)


def test_one_home_for_the_rule() -> None:
    s = _settings()
    for removed, before in [(0, 0), (1, 0), (2, 10), (3, 10), (50, 10000), (49, 10000)]:
        want = is_high_removal(removed, before, s)
        assert cards.is_high_removal(removed, before, s) == want
        assert member_review.is_high_removal(removed, before, s) == want
        assert progress.is_flagged(removed, before, s) == want


def test_summary_share_agrees_with_the_rule() -> None:
    # The contact's summary shows the same share the rule decides on (100% from 0 members).
    from storage.models import ReviewStatus

    def summary(total: int, removed: int) -> member_review.Summary:
        return member_review.Summary(
            status=ReviewStatus.draft,
            joint=False,
            total=total,
            removed=removed,
            by_reason={},
            high=False,
            confirmed=False,
            missing_remarks=0,
        )

    assert summary(0, 2).share == 1.0
    assert summary(0, 0).share == 0.0
    assert summary(10, 3).share == 0.3
