"""The workbench's Chinese text (issue 13 point 2)."""

from __future__ import annotations

TITLE = "工作台"
NAV = (("overview", "总览"), ("pending", "待审核"), ("units", "单位"))

FORBIDDEN_TITLE = "无权访问"
FORBIDDEN = "该页面或操作不在您负责的范围内，已记录。"
NOT_OPERATOR = "您不是任何工会的联系人或审核人，无法使用工作台。如有疑问请联系上级工会。"
CSRF_FAILED = "页面已过期或来源不明，请刷新页面后重试。"
LOGIN_FAILED = "登录失败：授权码无效或已过期，请从应用菜单重新打开工作台。"
LOGIN_UNAVAILABLE = "暂时无法登录，请稍后重试。"
DINGTALK_OFF = "本系统未开通钉钉登录。"
DINGTALK_SIGNING_IN = "正在通过钉钉登录工作台…"
DINGTALK_OUTSIDE = "请在钉钉中打开此页面（工作台 → 从钉钉聊天中发送「工作台」）。"
NOT_FOUND = "找不到该记录。"
NOT_SUBMITTED = "该单位的年审尚未提交，暂无审核详情。"
APPROVERS_ONLY = "待审核仅对审核人开放。"

NOTHING_SELECTED = "请先勾选要处理的年审。"
REASON_NEEDED = "退回须填写原因（不超过 200 字）。"
FLAGGED_SKIPPED = "{unit}：删除会员较多（S6），须打开审核详情核实后单独通过，本次未处理"
FLAGGED_CONFIRM = "该年审删除会员较多，请勾选“已核实”后再通过。"
R_NEXT = "{unit}：已通过，已转上级工会审核"
R_DONE = "{unit}：已通过，年审完成"
R_RETURNED = "{unit}：已退回"
R_REROUTED = "{unit}：单位已调整隶属关系，本次审核已关闭"
R_MEANWHILE = "{unit}：已由{who}于 {at} {decision}，本次未处理"
R_REFUSED = "{unit}：无权处理（{why}）"
R_FAILED = "{unit}：处理失败，未做任何修改，请稍后重试"
R_NOT_FOUND = "第 {step} 项：找不到该审核"

URGED = "已催办 {n} 个单位"
URGE_RECENT = "{n} 个单位近期已催办，本次跳过"
URGE_NO_CONTACT = "{n} 个单位没有联系人，无法催办"
URGE_CLOSED = "已过截止日期，无法催办"
URGE_NIGHT = "（夜间不打扰，消息将于 {at} 发出）"
URGE_NONE = "没有需要催办的单位"

CHAT_LINK = "工作台（总览、批量审核、单位进度）：\n{url}\n请在企业微信中打开。"
CHAT_NOT_OPERATOR = "您不是任何工会的联系人或审核人，无法使用工作台。"
REFUSED_WHY = {
    "stranger": "不是审核人",
    "inactive": "已停用",
    "not_approver": "不是本级审核人",
    "submitter": "不能审核自己提交的年审",
    "own_unit": "不能审核本单位的年审",
}
