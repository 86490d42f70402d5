"""Suggested leavers and the checks before submission (issue 16), as the union contact reads
them: part of the member review's script (``dialogs/texts/member_review.py``), kept apart so
the two change independently."""

from __future__ import annotations

# -- how many (list and file) -----------------------------------------------------------------
COUNT_LINE = (
    "💡 按身份证号推算，到今天已到法定退休年龄的在册会员 {sure} 人{maybe_part}（已标记的不计）"
    "{old_part}。回复「建议」查看名单。"
)
COUNT_MAYBE = "，另有 {n} 名女职工可能已到"
COUNT_OLD = "；另有 {n} 人超过 100 岁，可能是数据有误或已死亡"
# nobody has reached the age, only over-100s are found
COUNT_ONLY_OLD = (
    "💡 按身份证号推算，在册会员中有 {n} 人超过 100 岁，可能是身份证号有误或已死亡"
    "（已标记的不计）。回复「建议」查看名单。"
)

# -- 建议 -----------------------------------------------------------------------------------------
NONE = "按身份证号推算，到今天（{today}）没有已到法定退休年龄、尚未标记的在册会员。"
HEAD = "【建议退休名单】按身份证号推算，截至 {today}。只是建议，请核实后再标记："
SURE_HEAD = "已到法定退休年龄 {n} 人："
MAYBE_HEAD = (
    "可能已到 {n} 人（女职工：工人 50 岁、干部 55 岁退休，2025 年起逐步延迟，请按岗位核实）："
)
OLD_HEAD = "超过 100 岁 {n} 人（可能是身份证号有误，或已死亡，请核实）："
LINE = "{index}. {name} {masked} {sex} {age} 岁"
SEX = {False: "男", True: "女"}
MORE = "……本组后面还有 {n} 人"
PAGE_OF = "（第 {page}/{pages} 页）"
GROUP_DONE = "（本组在前面几页已列完）"
NEXT_PAGE = "名单较长，共 {pages} 页：回复「建议 {next}」看下一页。"
LAST_PAGE = "这是最后一页（共 {pages} 页）；回复「建议 1」回到第一页。"
NO_SUCH_PAGE = "建议名单没有第 {page} 页，共 {pages} 页，下面是最后一页。"
PAGE_INVALID = "页码从 1 开始，如「建议 2」。"
ASK_ALL = (
    "标记：回复「序号 退休」，如「{example} 退休」；已到法定退休年龄的 {n} 人"
    "也可回复「全部标记退休」一次标记（不含「可能」和超过 100 岁的）。"
)
ASK_ONE = "标记：回复「序号 退休」，如「{example} 退休」（死亡请用「序号 死亡」）。"

# -- 全部标记退休 ----------------------------------------------------------------------------------
CONFIRM = (
    "将把已到法定退休年龄的 {n} 人标记为【退休】{left_out}。\n"
    "确认请回复「确认标记 {n} 人」；不标记请回复「返回」。"
)
LEFT_OUT = "（不含{parts}）"
LEFT_OUT_MAYBE = "「可能」的 {n} 人"
LEFT_OUT_OLD = "超过 100 岁的 {n} 人"
LEFT_OUT_SEP = "和"
CONFIRM_HELP = "回复「确认标记 N 人」（N 是上面说的人数）一次标记；回复「返回」不标记。"
CONFIRM_INVALID = "请回复「确认标记 {n} 人」，或回复「返回」不标记。"
CONFIRM_CHANGED = "名单有变化：现在已到法定退休年龄、尚未标记的是 {n} 人。"
NOTHING_TO_MARK = (
    "没有可以一次标记的会员：按身份证号推算，没有已到法定退休年龄、尚未标记的在册会员。"
)
NOTHING_TO_MARK_REST = (
    "{parts}不会一次标记：请回复「建议」查看，核实后用「序号 退休」或「序号 死亡」逐个标记。"
)
NO_CONFIRM_PENDING = (
    "现在没有等待确认的「全部标记退休」（可能已经标记过了）。回复「已选」查看已标记的会员，"
    "回复「建议」查看还未标记的。"
)
MARKED_ALL = "已把 {n} 人标记为【退休】。回复「已选」可查看，「取消 序号」可撤销。"

# -- checks before submission (warn, never block) ---------------------------------------------
WARN_HEAD = "⚠ 提交前请核对（不影响提交）："
WARN_LINE = "· {text}"
