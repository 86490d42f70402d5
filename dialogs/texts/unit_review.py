"""The unit-information review (U1–U3, D1–D7), as the union contact reads it.

The script, in order: entry (who may start, the year's state) → the numbered list of the unit's
information → 修改: pick a number → type the new value (checked; a rejection names the rule and
gives an example) → back to the list → 无变更/下一步 → the confirmation, old → new →
确认 (on to the member review) or 取消 (back to editing).
"""

from __future__ import annotations

from services import unit_fields

# -- Entry (U1) -----------------------------------------------------------------------------
START = (
    "【{year} 年度工会服务卡年审】\n单位：{unit}\n截止日期：{deadline}\n\n第一步：核对单位信息。"
)
RESUME = "【继续 {year} 年度年审】\n单位：{unit}\n截止日期：{deadline}"
RETURNED = "您单位的年审被上级工会退回修改，原因：{reason}\n请修改后重新确认提交。"
NOT_CONTACT = (
    "只有基层工会或联合工会的年审联系人才能发起年审。\n"
    "系统中没有找到您的联系人登记。如果您是本单位的工会联系人，请联系上级工会在系统中登记您。"
)
APPROVER = (
    "您是「{unions}」的审核人，年审由下级基层工会的联系人发起。\n"
    "您可以：在收到的审核卡片上直接「通过」或「退回」；发送「进度」查看下级单位的年审进度。"
)
NOT_REVIEWING = "「{unit}」不是基层工会或联合工会，不需要做年审。年审由下级基层工会的联系人发起。"
NOT_REGISTERED = (
    "「{unit}」在服务卡系统的登记日期是 {registered}，晚于今年的截止登记日期 {cutoff}，"
    "本年度不参加年审（规则 R1）。如有疑问请联系上级工会。"
)
CLOSED = "本年度年审已于 {deadline} 截止，不能再发起新的年审。如有疑问请联系上级工会。"
COMPLETED = "「{unit}」{year} 年度的年审已于 {date} 完成，每个单位每年只做一次年审。"
SUBMITTED = "「{unit}」的年审已提交，正在等待「{union}」审核（第 {level} 级，共 {levels} 级）。审核结果会通知您。"
SUBMITTED_PLAIN = "「{unit}」的年审已提交，正在等待上级工会审核。审核结果会通知您。"
MEMBERS_NEXT = "单位信息已确认。下一步是会员信息年审，该功能即将开放，届时发送「年审」即可继续。"

# -- The list (U2) ----------------------------------------------------------------------------
LABELS = unit_fields.LABELS  # shared with the approvers' details (services/details.py)
EMPTY = "（未填写）"
EDITED_MARK = "（已修改）"
CUT = "{head}…（共 {n} 字）"
LIST_HEAD = "【单位信息】请核对以下信息："
LIST_LINE = "{n}. {label}：{value}{mark}"
LIST_ASK = "信息都正确，回复「无变更」；需要修改，回复「修改」（或直接回复编号）。"
LIST_ASK_EDITED = "修改完成后回复「下一步」查看确认；继续修改请回复「修改」或编号。"
SHOW_HELP = (
    "请核对列表中的单位信息。\n"
    "· 全部正确：回复「无变更」；\n"
    "· 需要修改：回复「修改」，再回复编号（如 11 修改联系人手机），然后输入新的内容；\n"
    "· 修改过的内容会先保存在草稿里，上级工会审核通过后才会生效。"
)
SHOW_INVALID = "请回复「无变更」、「修改」或要修改的编号（1–12）。"
CROSS_PROBLEMS = "还有以下问题需要先修改："

# -- Picking a field --------------------------------------------------------------------------
PICK = "请回复要修改的项目编号（1–12），例如回复 11 修改联系人手机。"
PICK_HELP = "回复列表中的编号（1–12）选择要修改的项目；发送「返回」回到单位信息列表。"
PICK_INVALID = "请回复 1 到 12 之间的编号，例如「11」。"

# -- Typing a value (D1–D7): what to type, with an example ----------------------------------
ASK_VALUE = "请输入新的「{label}」。\n当前：{value}\n{hint}"
HINTS = {
    "name": "请填写与工会公章一致的全称，例如：常州市XX有限公司工会委员会、常州市XX区XX街道XX村工会联合会。",
    "employees_total": "请填写整数，例如：120。",
    "members_count": "请填写整数，不能超过职工总数，例如：98。",
    "female_count": "请填写整数，不能超过职工总数，例如：45。",
    "dispatched_count": "请填写整数，不能超过职工总数，没有请填 0。",
    "migrant_count": "请填写整数，不能超过职工总数，没有请填 0。",
    "union_status": "请回复编号：\n1. 已建立独立基层工会\n2. 建立工会联合会（村、社区等联合工会选此项）\n3. 未建立工会",
    "legal_cert_no": "请填写社团法人证书上的统一社会信用代码（18 位，工会以 81 或 89 开头），例如：81320400MC1234567L。",
    "term_expiry": "请填写日期，例如：2027-05-01、2027年5月1日 或 2027/5/1。",
    "contact_name": "请填写现任工会负责人或联系人的姓名，例如：张明。",
    "contact_mobile": "请填写 11 位手机号，例如：13912345678。",
    "other_info": "请如实填写其他工会工作基本情况，不超过 {max} 字；回复「无」表示清空。",
}
VALUE_HELP = "直接输入新的内容即可，输入后会检查格式。发送「返回」不修改，回到上一步。"
SAVED = "已保存：{label} → {value}"
UNCHANGED = "与当前内容相同，未作修改。"
WARN_TERM_EXPIRED = "注意：届满日期 {date} 已过，请尽快组织换届选举（D5）。"

# Rejections: each names the rule and gives an example.
REJECT = {
    "name.empty": "单位名称不能为空（D1）。例如：常州市XX有限公司工会委员会。",
    "name.too_long": "单位名称太长了，最多 {max} 个字（D1）。",
    "name.short_form": (
        "「{value}」看起来是简称（D1：须填写与公章一致的全称）。\n"
        "全称以「工会委员会」「工会联合会」或「联合工会委员会」结尾，例如：\n"
        "常州市XX有限公司工会委员会\n常州市XX区XX街道XX村工会联合会\n常州市XX局机关工会委员会"
    ),
    "name.suffix": (
        "单位名称须填写工会的全称（D1），以「工会委员会」「工会联合会」或「联合工会委员会」结尾，"
        "例如：常州市XX有限公司工会委员会。"
    ),
    "count.not_integer": "「{value}」不是整数（D2：人数填整数）。例如：120。",
    "count.negative": "人数不能是负数（D2）。例如：0 或 120。",
    "count.too_large": "人数太大了，请核对（D2）。例如：120。",
    "count.exceeds_total": "{label}不能超过职工总数 {total}（D2）。例如：职工 120 人时，会员人数可填 98。",
    "count.total_below": "职工总数 {total} 小于{label} {count}（D2：各项人数都不能超过职工总数）。请填写不小于 {count} 的整数，或先修改{label}。",
    "status.choice": "请从列表中选择（D3），回复编号 1、2 或 3。",
    "status.joint": "本单位是联合工会（村、社区等），工会建立情况须选「2. 建立工会联合会」（D3）。",
    "uscc.invalid": "「{value}」不是有效的统一社会信用代码（D4：18 位，最后一位为校验码）。例如：81320400MC1234567L。",
    "uscc.not_union": "「{value}」不是工会的社团法人代码（D4：工会的代码以 81 或 89 开头）。例如：81320400MC1234567L。",
    "uscc.required": "已建立工会的单位必须填写社团法人证号（D4）。例如：81320400MC1234567L。",
    "date.format": "「{value}」不是可识别的日期（D5）。例如：2027-05-01、2027年5月1日 或 2027/5/1。",
    "date.invalid": "「{value}」不是真实存在的日期（D5）。例如：2027-05-01。",
    "date.range": "「{value}」的年份不合理，请核对（D5）。例如：2027-05-01。",
    "contact.name": "联系人姓名应为 2 到 20 个汉字或字母（D6）。例如：张明。",
    "mobile.format": "「{value}」不是有效的手机号（D6：11 位，以 1 开头）。例如：13912345678。",
    "other.too_long": "内容共 {length} 字，超过了 {max} 字的限制（D7），请精简后再发送。",
    "text.control": "内容里有看不见的控制字符（{char}），多半是复制粘贴带进来的。请直接输入文字后重新发送。",
    "text.bidi": "内容里有改变文字方向的隐藏字符（{char}），会让名称显示错乱。请直接输入文字后重新发送。",
    "text.format": "内容里有看不见的格式字符（{char}）。请直接输入文字后重新发送。",
}
REJECT_DEFAULT = "这个内容不符合要求，请按提示重新填写。"

# -- The confirmation (U3) ---------------------------------------------------------------------
CONFIRM_HEAD = "【确认单位信息】以下内容将随年审提交上级工会审核，审核通过后生效："
CONFIRM_LINE = "{label}：{old} → {new}"
CONFIRM_ASK = "信息无误请回复「确认」，进入会员信息年审；需要再改请回复「取消」返回修改。"
CONFIRM_HELP = "回复「确认」确认单位信息并进入会员信息年审；回复「取消」回到单位信息列表继续修改。"
CONFIRM_INVALID = "请回复「确认」或「取消」。"
CONFIRMED = "单位信息已确认。"
NO_CHANGES = "单位信息无变更，已确认。"
NOT_EDITABLE = "这次年审已经提交或完成，不能再修改。发送「进度」查看审核情况。"
