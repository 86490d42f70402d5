"""What the bot says to approvers of higher unions: 进度/统计, 催办, 报表 (issue 7)."""

from __future__ import annotations

CMD_PROGRESS = ("进度", "状态", "统计", "查询进度", "年审进度", "统计数据")
CMD_URGE = ("催办", "一键催办", "催促")
CMD_REPORT = ("报表", "导出", "导出报表", "下载报表", "明细")

HEAD = "【年审进度】{union} · {year}年度（统计时间 {at}）"
DEADLINE = "截止日期：{deadline}（{days}）"
DAYS_LEFT = "还有 {n} 天"
DAYS_TODAY = "今天截止"
DAYS_PAST = "已过截止日期 {n} 天"
ELIGIBLE = "参加年审的单位：{n} 个"
STATUS_LINE = "· {label}：{n} 个"
STATUS_LABELS = {
    "not_started": "未开始",
    "draft": "填写中",
    "submitted": "已提交待审核",
    "returned": "已退回待修改",
    "completed": "已完成",
}
COMPLETED_RATE = "（完成率 {pct}%）"
LEVEL_LINE = "    第{level}级「{union}」审核中：{n} 个"
LEVEL_UNKNOWN = "    审核中：{n} 个"
REMOVED = "已删除会员：退休 {retired} 人，离职 {resigned} 人，死亡 {deceased} 人"
FLAGGED = "删除会员较多、需重点核实的单位：{n} 个（{names}）"
PAST = "逾期未完成的单位：{n} 个（{names}）"
NOT_ELIGIBLE = "未纳入本年度年审的单位（登记晚于截止日期或未登记）：{n} 个"
NAMES_MORE = "等"
NAMES_SEP = "、"
NO_UNITS = "下级单位中没有参加本年度年审的单位。"
TAIL = "回复「催办」提醒尚未开始的单位，回复「报表」获取 Excel 明细，发送「统计」刷新。"
TAIL_BACK = "发送「返回」回到刚才的操作。"
STEP_HELP = (
    "这里是下级单位的年审进度。\n"
    "· 回复「统计」或「进度」：刷新统计；\n"
    "· 回复「催办」：立即提醒尚未开始年审的单位（每个单位每天最多一次）；\n"
    "· 回复「报表」：获取按状态分表的 Excel 明细；\n"
    "· 发送「取消」结束。"
)
UNKNOWN = "请回复「催办」「报表」或「统计」。发送「帮助」查看说明。"
NOT_APPROVER = "您不是上级工会的审核人，不能查看下级单位的年审进度或催办。"

URGED = "「{union}」已向 {n} 个尚未开始年审的单位发出催办：{names}。"
URGED_AT = "现在是夜间免打扰时段，催办消息将于 {time} 发出。"
URGED_RECENT = "{n} 个单位在 {days} 天内已催办过，暂不重复：{names}。"
URGED_NO_CONTACT = "{n} 个单位没有登记联系人，无法催办：{names}。请先补充操作管理员。"
URGE_NONE = "「{union}」下没有尚未开始年审的单位，无需催办。"
URGE_CLOSED = "已过年审截止日期（{deadline}），不能再开始年审，催办已停止。"

REPORT_READY = "「{union}」年审进度报表已生成（{n} 个单位，按状态分表），请查收文件：{file}"
REPORT_TOO_BIG = "报表太大（{mb} MB），无法通过消息发送。请联系管理员用命令行导出。"
