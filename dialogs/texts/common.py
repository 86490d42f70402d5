"""What the bot says for the global commands and the engine's own situations.

Global commands work at every step: 帮助 · 取消 · 返回 · 进度 (状态) · 年审.
"""

from __future__ import annotations

# The commands as the user types them (compared after removing spaces, NFKC).
CMD_HELP = ("帮助", "help", "?", "？", "怎么办", "说明")
CMD_CANCEL = ("取消", "退出")
CMD_BACK = ("返回", "上一步")
CMD_PROGRESS = ("进度", "状态", "查询进度", "统计")
CMD_START = ("年审", "开始年审", "继续年审")

# App-menu keys (the channel passes the menu's key through unchanged).
MENU_START = ("review", "annual_review", "年审")
MENU_PROGRESS = ("progress", "进度")
MENU_HELP = ("help", "帮助")

COMMANDS_LINE = (
    "随时可发送：「帮助」查看说明，「返回」回到上一步，「进度」查看进度，「取消」暂停年审。"
)

WELCOME = (
    "您好，这里是工会服务卡年审助手。\n发送「年审」开始或继续本单位的年审；发送「帮助」查看说明。"
)

HELP_IDLE = (
    "【使用说明】\n"
    "· 发送「年审」（或点击菜单“年审”）开始或继续本单位的年审；\n"
    "· 年审分两步：先核对单位信息，再核对会员信息，最后提交上级工会逐级审核；\n"
    "· 发送「进度」查看年审进度和截止日期。\n"
    "您填写的内容会随时保存，中途离开也不会丢失。"
)

HELP_STEP = "【当前这一步】\n{help}\n\n" + COMMANDS_LINE

OFFER_HELP = "看起来这一步不太顺利。发送「帮助」可以查看这一步怎么填，发送「返回」回到上一步。"

# 取消
CANCEL_ASK = "确定要暂停年审吗？已填写的内容会保存为草稿，之后发送「年审」可以接着做。\n回复「确认」暂停，回复「继续」接着做。"
CANCEL_HELP = "回复「确认」暂停年审（草稿会保留），回复「继续」回到刚才的步骤。"
CANCEL_AGAIN = "请回复「确认」暂停年审，或回复「继续」接着做。"
CANCELLED = "已暂停年审，您填写的内容已保存为草稿。需要继续时发送「年审」或任意消息即可。"
CANCEL_ABORTED = "好的，我们继续。"
PAUSED_HELP = "年审已暂停，草稿已保存。发送任意消息或「年审」即可接着做。"
NOTHING_TO_CANCEL = "您当前没有进行中的操作。发送「年审」开始或继续年审。"

# 返回
NO_BACK = "已经是第一步了，无法再返回。"

# Stale answers and old buttons
EXPIRED = "该回复对应的是之前的提示，已过期。请按当前的提示操作："
EXPIRED_BUTTON = "该按钮已过期。请按当前的提示操作："
EXPIRED_CARD_LABEL = "已过期"

# A message of the wrong kind
WRONG_KIND = {
    "file": "这一步需要回复文字，暂不需要文件。",
    "upload": "这一步需要回复文字，暂不需要文件。",
    "card_action": "这一步请直接回复文字。",
}
WRONG_KIND_DEFAULT = "这一步需要回复文字。"
NEED_FILE = "这一步需要上传文件，请按提示上传。"
UNSUPPORTED = "暂不支持图片、语音、位置等消息，请回复文字。发送「帮助」查看说明。"
FILE_WHEN_IDLE = (
    "已收到文件，但您当前不在需要上传文件的步骤。发送「年审」继续年审，或「帮助」查看说明。"
)

# The cursor was lost or cannot be read (the draft in the database is safe)
CURSOR_LOST = "您有一段时间没有操作，会话已过期。您之前填写的内容都已保存，我们从草稿接着来。"
CURSOR_OLD = "系统刚刚升级过，我们从您保存的草稿接着来。"
CURSOR_UNKNOWN = "系统刚刚升级过，原来的步骤已调整，我们从您保存的草稿接着来。"

# Busy / failure (never silent, never "error")
BUSY = "您的上一条消息还在处理中，请稍等片刻再发送这一条。"
SORRY = "抱歉，这条消息没能处理成功，您已填写的内容不受影响。请稍后再发送一次，或发送「帮助」。"

# 进度
STAGES = ("单位信息年审", "会员信息年审", "提交上级工会审核")
PROGRESS_HEAD = "【年审进度】{year} 年度"
PROGRESS_UNIT = "单位：{unit}"
PROGRESS_AT = "当前：{stage}{detail}"
PROGRESS_LEFT = "还剩：{left}"
PROGRESS_NONE_LEFT = "还剩：无，等待审核结果"
PROGRESS_DEADLINE = "截止日期：{deadline}（{days}）"
DAYS_LEFT = "还有 {n} 天"
DAYS_TODAY = "今天截止"
DAYS_PAST = "已过截止日期 {n} 天"
PROGRESS_NOT_STARTED = "本单位本年度年审尚未开始，发送「年审」开始。"
PROGRESS_SUBMITTED = "已提交，正在等待「{union}」审核（第 {level} 级，共 {levels} 级）。"
PROGRESS_SUBMITTED_PLAIN = "已提交，正在等待上级工会审核。"
PROGRESS_RETURNED = "已被退回修改，原因：{reason}。发送「年审」继续修改后重新提交。"
PROGRESS_COMPLETED = "本年度年审已于 {date} 完成。"
PROGRESS_APPROVER = (
    "您是「{unions}」的审核人。待审核的年审会以卡片消息发给您，直接在卡片上处理即可。"
)
PROGRESS_NOBODY = "您不是任何单位的年审联系人或审核人。如需开通，请联系上级工会。"

# The user's operator row was switched off (停用) or their role changed mid-conversation
DEACTIVATED = (
    "您已不是本单位的年审联系人（账号已停用或角色已变更），本次会话已结束，刚才的操作没有生效。"
    "如有疑问，请联系上级工会。"
)
