"""What the bot says in the approval dialog: approvers clicking cards, the contact's 撤回.

The card itself and the notices sent through the outbox are worded in ``services/cards.py``.
"""

from __future__ import annotations

# 通过
APPROVED_NEXT = "已通过（{level}），已转交上一级工会继续审核，结果会通知联系人。"
APPROVED_DONE = "已通过（{level}）。这是最后一级，年审已完成：会员和单位信息已按申报更新。"

# A click on a card that was decided or withdrawn before
ALREADY = "该年审{stamp}，无需再处理。"
ALREADY_LABEL = "{label}"
REROUTED = "该单位的隶属关系已调整，这份年审已改由新的上级工会审核，您无需再处理。"

# Refusals (each written to the audit log)
REFUSED = {
    "stranger": "您不是该年审的审核人，无法处理。如有疑问，请联系上级工会。",
    "not_approver": "只有当前审核级别工会的审核人才能处理这份年审，您的操作未生效。",
    "submitter": "您是这份年审的提交人，不能审核自己提交的年审。",
    "own_unit": "您是该单位的联系人（操作管理员），不能审核本单位的年审，您的操作未生效。",
    "inactive": "您的账号已停用，无法处理年审。如有疑问，请联系上级工会。",
}
NOT_FOUND = "没有找到这份年审的审核记录，卡片可能已失效。"
APPLY_FAILED = (
    "抱歉，年审生效时出现问题，本次操作没有生效，所有数据保持不变。请稍后再点一次「通过」。"
)

# 退回: ask for the reason
RETURN_ASK = (
    "请直接回复退回原因（会转告 {unit} 的联系人，例如“会员人数与名单不符”）。\n"
    "回复「取消」则不退回，卡片仍然有效。"
)
RETURN_HELP = "请回复退回原因（2–200 字）；回复「取消」不退回。"
RETURN_TOO_SHORT = "退回原因太短了，请写清楚需要联系人修改什么（至少 2 个字）。"
RETURN_TOO_LONG = "退回原因请控制在 200 字以内。"
RETURN_HIDDEN = (
    "退回原因里有看不见的控制字符或改变文字方向的字符（{char}），请直接输入文字后重新发送。"
)
RETURN_CANCELLED = "好的，没有退回，年审仍在等待您审核，可以随时在卡片上处理。"
RETURN_DONE = (
    "已退回 {unit} 的年审，原因已转告联系人。联系人修改后重新提交时，您会收到新的审核卡片。"
)
RETURN_LATE = "没有退回：该年审{stamp}。"
RETURN_MIN = 2
RETURN_MAX = 200
CANCEL_WORDS = ("取消", "返回", "不退回", "算了")

# 查看明细
DETAIL_REFUSED = "您无权查看这份年审的明细。"

# The contact's 撤回
CMD_WITHDRAW = ("撤回", "撤回年审", "撤销", "撤回提交")
WITHDRAWN = "已撤回本年度年审，审核卡片已同步更新。您填写的内容都还在，发送「年审」可以继续修改，修改后重新提交即可。"
WITHDRAW_ERRORS = {
    "withdraw.decided": "上级工会已经开始审核，无法撤回。如需修改，请联系审核人退回。",
    "review.not_submitted": "您的年审当前不在审核中，无需撤回。发送「进度」查看进度。",
    "review.not_found": "没有找到您提交的年审。发送「进度」查看进度。",
    "withdraw.not_contact": "只有本单位的联系人可以撤回年审。",
}
NOTHING_TO_WITHDRAW = "您当前没有等待审核的年审，无需撤回。发送「进度」查看进度。"
SUBMITTED_WAIT = "您的年审已提交，正在等待上级工会审核，审核结果会通知您。在第一级审核前，发送「撤回」可以撤回修改。"
SUBMITTED_HELP = "年审已提交，等待审核。发送「撤回」可在第一级审核前撤回；发送「进度」查看进度。"
