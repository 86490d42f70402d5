"""Keeping the union tree right (issue 14; S2-S5): one module per operation.

Each operation has a ``preview_*`` (what will change, a small dataclass with a Chinese
``render()``) and an ``apply_*`` that checks everything again inside one transaction, writes an
audit row and raises :class:`~services.tree.common.TreeRefused` (a Chinese message) when the
operation cannot be done. Who acts is an :class:`~services.tree.common.Actor`.
"""
