"""What the bot says in the pending-reviews flow (待审核, issue 13 point 1, S6)."""

from __future__ import annotations

# Commands (compared after NFKC and removing spaces)
CMD_LIST = ("待审核", "待审", "待审核列表", "审核列表", "待我审核")
# issue 16: only the reviews with hints for approvers (💡)
CMD_LIST_HINTS = ("待审核提示", "待审核有提示", "有提示的待审核", "待审提示", "待审核💡")
MENU_KEYS = ("pending", "待审核")
CMD_NEXT = ("下一页", "下页", "后一页")
CMD_PREV = ("上一页", "上页", "前一页")
CMD_ALL = ("全部通过", "通过全部", "一键通过", "全部审核通过")
CMD_LEAVE = ("取消", "退出", "结束")
PREFIX_APPROVE = ("通过", "批准", "同意")
PREFIX_RETURN = ("退回",)
PREFIX_DETAIL = ("明细", "详情", "审核详情", "查看明细")
PREFIX_CONFIRM = ("确认通过", "确定通过")

PAGE_SIZE = 10

# The list
HEAD = "【待您审核的年审】共 {n} 份{flagged}，第 {page}/{pages} 页："
HEAD_FLAGGED = "，其中 {n} 份删除会员较多（⚠，S6），排在最前"
HEAD_HINTS = "【待您审核、有提示（💡）的年审】共 {n} 份{flagged}，第 {page}/{pages} 页："
ROW_HINT = "💡 "  # the review has hints (人数对不上等，「明细」里有提示原文)
ROW = (
    "{n}. {warn}{unit}\n"
    "   会员 {before} → {after}；减少 {removed} 人（{reasons}）；已等待 {days} 天"
)
ROW_WARN = "⚠ "
ROW_GONE = "{n}. {unit}（已处理，不在待审核中）"
TAIL = (
    "回复「通过 3」或「通过 1-5,8」通过；「全部通过」通过所有未标 ⚠ 的年审；"
    "「退回 3 原因」退回；「明细 3」查看审核详情；{pages}发送「待审核」刷新列表（编号随之更新）。"
)
TAIL_PAGES = "「下一页」「上一页」翻页；"
TAIL_HINTS = (
    "💡 表示有提示（如申报人数与名单对不上），「明细 3」可看提示；「待审核 提示」只列有提示的。"
)
TAIL_HINTS_ONLY = "这里只列有提示的；发送「待审核」查看全部。"
NONE_WITH_HINTS = "目前等待您审核的年审中没有带提示（💡）的。发送「待审核」查看全部。"
NONE = "目前没有等待您审核的年审。新的年审提交后，您会收到审核卡片。"
NOT_APPROVER = "您不是上级工会的审核人，没有需要您审核的年审。"
NO_MORE_PAGES = "已经是最后一页了。"
FIRST_PAGE = "已经是第一页了。"
HELP = (
    "这里是待您审核的年审列表，编号对应最近一次显示的列表：\n"
    "· 「通过 3」通过第 3 份；「通过 1-5,8」一次通过多份（⚠ 的不包括在内）；\n"
    "· 「全部通过」通过所有未标 ⚠ 的待审核年审（不只本页），需再确认份数；\n"
    "· 「退回 3 原因」退回第 3 份，原因会转告联系人；\n"
    "· 「明细 3」查看第 3 份的审核详情；「下一页」「上一页」翻页；\n"
    "· 发送「待审核」刷新列表；「取消」离开列表。"
)
LEFT = "好的，已离开待审核列表。发送「待审核」可随时再查看。"
UNKNOWN = "没看懂。请回复「通过 3」「退回 3 原因」「明细 3」「全部通过」或「下一页」；发送「帮助」查看说明。"

# Numbers
NONE_LISTED = "上次查看时没有等待您审核的年审。发送「待审核」刷新列表。"
NO_LIST = "请先发送「待审核」查看列表，编号对应最近一次显示的列表。"
NO_NUMBER = "请在「{cmd}」后写编号，例如「{cmd} 3」{more}。"
NO_NUMBER_MORE = "或「通过 1-5,8」"
BAD_SPEC = (
    "没看懂「{spec}」。编号请写数字，多个编号用逗号或顿号隔开，连续的用短横线，例如「通过 1-5,8」。"
)
ZERO = "编号从 1 开始，没有第 0 份。"
OUT_OF_RANGE = "列表里只有 {total} 份，没有第 {n} 份。发送「待审核」可刷新列表。"
REVERSED = "「{a}-{b}」前面的数大于后面的数。如果是第 {b} 到第 {a} 份，请写「通过 {b}-{a}」。"
ONE_ONLY = "「{cmd}」一次只能处理一份，请只写一个编号，例如「{cmd} 3」。"

# Outcomes, one review ({item}: "第 3 份 <unit>", or the unit alone when it was not numbered)
ITEM = "第 {n} 份 {unit}"
ITEM_PLAIN = "「{unit}」"
APPROVED_NEXT = "已通过{item}（{level}），已转交上一级工会继续审核，结果会通知联系人。"
APPROVED_DONE = "已通过{item}（{level}），这是最后一级，年审已完成。"
RETURNED = "已退回{item}，原因已转告联系人。"
DECIDED_MEANWHILE = "{item} 已由 {who} 于 {at} {decision}，无需再处理。"
REROUTED = "{item} 的隶属关系已调整，已改由新的上级工会审核，您无需再处理。"
REFUSED = "{item}：{why}"
FAILED = "{item} 生效时出现问题，没有处理，数据保持不变，请稍后再试。"
NOT_FOUND = "{item} 的审核记录已不存在，请发送「待审核」刷新列表。"

# Flagged (S6)
FLAGGED_ASK = (
    "⚠ 第 {n} 份 {unit} 删除会员较多（{removed} 人，共 {before} 人），请先核实上面的审核详情。\n"
    "确认通过请回复「确认通过 {n}」；不通过请回复「退回 {n} 原因」。"
)
FLAGGED_SKIPPED = (
    "第 {nums} 份删除会员较多（⚠，S6），没有批量通过：请逐份发送「通过 N」核实后确认。"
)

# Bulk
BULK_HEAD = "已通过 {k} 份{detail}。"
BULK_DETAIL = "（{done} 份年审已完成，{next} 份已转交上一级工会）"
BULK_NOTHING = "这次没有通过任何年审。"
BULK_MORE = "……另有 {k} 份没有通过（已由他人处理或无法处理），发送「待审核」刷新列表查看。"
BULK_LINES_MAX = 10
CONFIRM_ALL_ASK = (
    "将通过 {k} 份未标 ⚠ 的待审核年审（全部页，不只本页）{flagged}。\n"
    "确认请回复「确认通过 {k} 份」；回复其他内容则不通过。"
)
CONFIRM_ALL_FLAGGED = "；{f} 份删除会员较多（⚠）的不包括在内，需逐份核实"
ALL_NONE_FLAGGED = "没有可以一键通过的年审：等待您审核的 {f} 份都删除会员较多（⚠），请逐份发送「通过 N」核实后确认。"
CONFIRM_NOTHING = "没有等待确认的操作。发送「全部通过」或「通过 N」。"
CONFIRM_MISMATCH_ALL = (
    "份数不对：待确认通过的是 {k} 份。请回复「确认通过 {k} 份」；"
    "列表有变化时请重新发送「全部通过」。"
)
CONFIRM_MISMATCH_ONE = "待确认的是第 {n} 份，请回复「确认通过 {n}」，或重新发送「通过 N」。"
CONFIRM_DROPPED = "已取消待确认的「{what}」，没有通过任何年审。"

# 退回 3 原因
RETURN_NO_NUMBER = "请写明退回哪一份和原因，例如「退回 3 会员人数与名单不符」。"
RETURN_NO_REASON = "请在编号后写退回原因，例如「退回 {n} 会员人数与名单不符」，原因会转告联系人。"
RETURN_TOO_SHORT = "退回原因太短了，请写清楚需要联系人修改什么（至少 {min} 个字）。"
RETURN_TOO_LONG = "退回原因请控制在 {max} 字以内。"
RETURN_HIDDEN = "退回原因里有看不见的控制字符（{char}），请直接输入文字后重新发送。"
