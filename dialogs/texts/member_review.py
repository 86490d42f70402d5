"""The member review (M1, M2, E2, E4, S6, M3), as the union contact reads it.

The script, in order: the choice of mode (how many members; 列表年审 or 导入文件年审) →
the list (pages of members; mark "3 退休", "5,7-9 离职"; 取消 3; 搜索; 已选; 完成) or the file
(the template, the upload link, the summary of a file and its error report; 接受 keeps the valid
rows) → the summary (totals by reason, the share removed) → 提交, with "确认删除 N 人" first when
many are removed → submitted.
"""

from __future__ import annotations

STAGE = "会员信息年审"
REASON = {"retired": "退休", "resigned": "离职", "deceased": "死亡"}

# -- The choice of mode (E2) ------------------------------------------------------------------
START = (
    "【第二步：会员信息年审】\n本单位共有 {count} 名在册会员。"
    "请把今年年审不通过（退休、离职、死亡）的会员标记出来，没有就直接「完成」。\n"
    "请选择方式：\n1. 列表年审：在聊天中逐页查看会员并标记；\n"
    "2. 导入文件年审：下载模板，填写不通过会员的身份证号码后上传。"
)
SUGGEST_FILE = "本单位会员较多（超过 {threshold} 人），建议选择 2. 导入文件年审。"
SUGGEST_LIST = "会员人数不多，建议选择 1. 列表年审。"
ALREADY_MARKED = "草稿中已标记 {n} 人不通过。"
JOINT_NOTE = (
    "本单位是联合工会：每位继续在册的会员都要在备注中写明所在单位（E4），目前还有 {n} 人没有备注。"
)
START_ASK = "回复 1 或 2 选择；回复「完成」查看汇总。"
START_HELP = "回复 1（列表年审）或 2（导入文件年审）。两种方式可以混用，标记都会保存在草稿里。"
START_INVALID = "请回复 1（列表年审）或 2（导入文件年审）。"
NO_MEMBERS = "本单位目前没有在册会员，无需标记。"

# -- The list (M1) ----------------------------------------------------------------------------
LIST_HEAD = "【会员列表】第 {page}/{pages} 页，共 {total} 人，已标记 {marked} 人"
LIST_LINE = "{index}. {name} {masked}{card}{remark}{mark}"
LIST_CARD = " 卡号{card}"
LIST_REMARK = " 备注：{remark}"
LIST_NO_REMARK = " 备注：（无）"
LIST_MARK = " ——【{reason}】"
LIST_EMPTY = "（本单位没有在册会员）"
LIST_LINE_GONE = "{index}. {name} {masked} ——（已不在本单位）{mark}"
LIST_ASK = (
    "标记：回复「序号 原因」，如「3 退休」「5,7-9 离职」；撤销：「取消 3」；\n"
    "翻页：「下一页」「上一页」「第2页」；「搜索 张三」或「搜索 身份证后4位」；"
    "「已选」查看已标记；标记完回复「完成」。"
)
LIST_ASK_JOINT = "填写所在单位：「备注 3 某某公司」；「缺备注」查看还没有备注的会员。"
LIST_HELP = (
    "· 标记不通过：序号加原因，如「3 退休」「5,7-9 离职」「12 死亡」（原因：退休、离职、死亡）；\n"
    "· 改原因：再标记一次即可；撤销标记：「取消 3」或「取消 5-7」，全部撤销：「取消全部标记」；\n"
    "· 翻页：「下一页」「上一页」「第3页」；查找：「搜索 张三」或「搜索 1234」（身份证后几位）；\n"
    "· 「已选」查看已标记的会员；「完成」查看汇总并提交；\n"
    "· 人多时也可以回复「导入」改用文件；每次标记都会立即保存。"
)
MARKED = "已标记 {n} 人为【{reason}】：{who}"
CHANGED = "已把 {who} 的原因改为【{reason}】"
UNCHANGED = "{who} 已经标记为【{reason}】，无需重复标记"
UNMARKED = "已撤销 {n} 人的标记：{who}"
NOT_MARKED = "序号 {indices} 本来就没有标记"
UNMARKED_ALL = "已撤销全部 {n} 人的标记。"
MARK_TOTAL = "目前共标记 {n} 人。"
WHO_SEP = "、"
WHO_MORE = " 等 {n} 人"

BAD_INDEX = "序号 {bad} 不存在：名单的序号是 1–{total}。"
MEMBERS_LEFT = (
    "{who} 已不在本单位（已调到其他单位或已删除），这条指令没有执行，其他序号也未改动。"
    "请回复「列表」查看最新名单后重新发送。"
)
LEFT_WHO = "序号 {index}（{name} {masked}）"
BAD_RANGE = "「{token}」看不懂：范围请写成小号在前，例如「7-9」。"
BAD_TOKEN = "「{token}」不是序号。序号是列表每行开头的数字，例如「3 退休」。"
TOO_MANY = "一次最多标记 {max} 人，人数多时建议回复「导入」改用文件年审。"
NEED_REASON = "请同时写明原因，例如「{indices} 退休」（原因：退休、离职、死亡）。"
NEED_INDEX = "请写明要标记的序号，例如「3 {reason}」。不知道序号可以先「搜索 姓名」。"
UNKNOWN_REASON = "不认识的原因「{reason}」。原因只能是：退休、离职、死亡，例如「3 退休」。"
TWO_REASONS = "一条消息只能用一种原因，请分开发送，例如「3 退休」和「5 离职」。"
LOOKS_LIKE_ID = "这看起来是身份证号码。请先「搜索 {tail}」找到该会员的序号，再按「序号 原因」标记。"
LOOKS_LIKE_NAME = "请用序号标记。可以先「搜索 {name}」找到序号，再回复如「3 {reason}」。"
LIST_INVALID = "没看懂这条回复。请按「序号 原因」标记（如「3 退休」），或回复「帮助」查看全部命令。"
NO_SUCH_PAGE = "没有第 {page} 页，共 {pages} 页。"
FIRST_PAGE = "已经是第一页。"
LAST_PAGE = "已经是最后一页。"

SEARCH_HEAD = "【搜索「{query}」】找到 {n} 人{more}："
SEARCH_MORE = "（只显示前 {n} 个）"
SEARCH_NONE = "没有找到姓名包含或身份证号以「{query}」结尾的在册会员。"
SEARCH_EMPTY = "请在「搜索」后写上姓名或身份证号后几位，例如「搜索 张三」「搜索 1234」。"
SEARCH_TAIL = "用序号标记，如「{index} 退休」。"

SELECTED_HEAD = "【已标记】共 {n} 人{more}："
SELECTED_MORE = "（显示前 {n} 人）"
SELECTED_NONE = "目前还没有标记任何会员。"

REMARK_ONLY_JOINT = "只有联合工会需要为会员填写所在单位备注。"
REMARK_FORMAT = "请按「备注 序号 所在单位」填写，例如「备注 3 常州市某某有限公司」。"
REMARK_SAVED = "已保存：{index}. {name} 备注：{remark}"
REMARK_HIDDEN = (
    "备注里有看不见的控制字符或改变文字方向的字符（{char}），多半是复制粘贴带进来的，没有保存。"
    "请直接输入所在单位后重新发送，例如「备注 3 常州市某某有限公司」。"
)
MISSING_HEAD = "【还没有备注的会员】共 {n} 人{more}，请按「备注 序号 所在单位」填写："
MISSING_NONE = "所有继续在册的会员都已有备注。"

# -- The file (M2) ----------------------------------------------------------------------------
FILE_INTRO = (
    "【导入文件年审】\n"
    "1. 打开上面的模板，每行填写一位年审不通过的会员：身份证号码（必填，文本格式）、"
    "姓名（选填）、不通过原因（下拉选择 退休/离职/死亡）；\n"
    "2. 把填好的文件直接发送到这里，或打开下面的链接上传（30 分钟内有效，只能用一次）：\n{url}\n"
    "支持 .xlsx、.xls、.csv，不超过 {mb} MB、{rows} 行。"
)
FILE_INTRO_JOINT = (
    "联合工会还请在「所在单位」列填写会员的工作单位：只填所在单位、不填原因的行表示该会员继续在册。"
)
FILE_HELP = (
    "把填好的模板文件发到这里（或用链接上传）。\n"
    "· 回复「模板」重新获取模板和上传链接；\n"
    "· 文件有错误时，会收到错误明细表：改好后重新发送，或回复「接受」只导入正确的行；\n"
    "· 回复「列表」改用列表年审，回复「完成」查看汇总。"
)
FILE_WAITING = "请发送填好的文件，或回复「模板」「列表」「完成」。"
FILE_ASK_ACCEPT = "请修改后重新发送文件，或回复「接受」只导入其中 {n} 条正确的记录。"
FILE_NOTHING_VALID = "文件中没有可以导入的正确记录，请按错误明细修改后重新发送。"
NOTHING_TO_ACCEPT = "目前没有待确认的文件。请先发送填好的文件。"
FILE_PLATFORM = "没能取到这个文件。请打开上传链接上传：\n{url}"
LINK_LIMIT = (
    "（这一小时内已获取 {n} 个上传链接，达到上限，暂不再发新链接。"
    "请用最近收到、还没用过的链接（30 分钟内有效），或直接把文件发送到这里；"
    "也可以在 {at} 之后回复「链接」获取新链接。）"
)

FILE_SUMMARY = "【文件「{name}」】共 {rows} 行，匹配本单位会员 {matched} 人，有问题 {errors} 行。"
FILE_BY_REASON = "其中：{parts}"
FILE_REMARKS = "填写所在单位（继续在册）{n} 人。"
FILE_ERRORS = "问题明细：{parts}。错误明细表见下一条消息。"
FILE_ALREADY = "（其中 {n} 人此前已标记，以本文件为准。）"
FILE_NO_HEADER = "提示：没有找到「身份证号码」列名，已按模板的列顺序（第一列是身份证号码）读取。"
FILE_APPLIED = "已导入：标记 {marked} 人{new_part}。{replaced_part}"
FILE_APPLIED_NEW = "（新增 {n} 人）"
FILE_REPLACED = "之前文件中标记、本文件没有的 {n} 人已撤销标记。"
FILE_NEXT = "回复「完成」查看汇总并提交；也可以继续发送文件或回复「列表」查看。"
FILE_SAME = "这个文件之前已经发送过（{when}），内容完全相同。"
FILE_SAME_APPLIED = "它已经导入，无需重复发送。"
FILE_SAME_REJECTED = "它当时没能读取："
REPORT_TITLE = "文件「{name}」的错误明细（共 {n} 行），改好后重新发送整个文件即可。"
NOT_EDITABLE = "本单位的年审已经提交，草稿已锁定，不能再修改。审核结果会通知您。"

ROW_ERRORS = {
    "id.empty": "身份证号码为空",
    "id.numeric": "身份证号码被存成了数字，后几位已丢失；请把该列设为文本格式后重新填写",
    "id.length": "身份证号码位数不对（应为 18 位）",
    "id.chars": "身份证号码含有非法字符（只能是数字，最后一位可以是 X）",
    "id.date": "身份证号码中的出生日期不存在",
    "id.checksum": "身份证号码校验位不对（可能有数字输错）",
    "member.not_found": "不是本单位在册会员",
    "member.removed": "该会员已不在册（以前已删除）",
    "member.after_cutoff": "该会员在今年年审截止日期之后入会，不参加今年的年审",
    "member.name_mismatch": "姓名与系统中该身份证号码的会员「{detail}」不一致，请核对身份证号码（或清空姓名）",
    "row.duplicate": "与第 {detail} 行重复",
    "reason.missing": "缺少不通过原因（退休、离职 或 死亡）",
    "reason.missing_joint": "缺少不通过原因或所在单位",
    "reason.unknown": "不通过原因「{detail}」无法识别（只能是 退休、离职 或 死亡）",
    "text.hidden": "{detail}：含有看不见的控制字符或改变文字方向的字符，请删除后重新填写",
}
ROW_ERROR_SHORT = {
    "id.empty": "身份证号为空",
    "id.numeric": "身份证号存成数字",
    "id.length": "位数不对",
    "id.chars": "含非法字符",
    "id.date": "出生日期不对",
    "id.checksum": "校验位不对",
    "member.not_found": "非本单位会员",
    "member.removed": "已不在册",
    "member.after_cutoff": "截止日期后入会",
    "member.name_mismatch": "姓名不符",
    "row.duplicate": "重复行",
    "reason.missing": "缺原因",
    "reason.unknown": "原因无法识别",
    "text.hidden": "含隐藏字符",
}

REJECTED = {
    "size.empty": "文件是空的（0 字节），请重新保存后再发送。",
    "size.too_large": "文件太大，最大 {mb} MB。请只保留年审不通过的会员，或删掉多余的工作表和图片。",
    "type.unknown": "这不是表格文件。请发送用模板填写的 .xlsx、.xls 或 .csv 文件。",
    "encrypted": "文件设置了密码（已加密），无法读取。请在 Excel 中取消密码后重新保存再发送。",
    "zip.corrupt": "文件已损坏或不完整，无法读取。请重新保存后再发送。",
    "zip.entries": "文件结构异常（内部部件过多），无法安全读取。请把内容复制到模板中再发送。",
    "zip.ratio": "文件结构异常（压缩比过高），无法安全读取。请把内容复制到模板中再发送。",
    "zip.size": "文件解压后太大，无法安全读取。请只保留需要的数据，或把内容复制到模板中。",
    "xml.doctype": "文件中含有不允许的结构（DTD/实体声明），无法安全读取。请把内容复制到模板中再发送。",
    "xml.encoding": "文件内部编码异常，无法读取。请用 Excel 重新保存后再发送。",
    "sheet.dimension": "表格范围异常（声明了过大的行列范围），无法安全读取。请把内容复制到模板中再发送。",
    "sheet.missing": "文件中没有可读取的工作表。",
    "rows.none": "文件中没有数据行：请在「身份证号码」列下面逐行填写年审不通过的会员。",
    "rows.too_many": "行数太多：最多 {rows} 行。请只填写年审不通过的会员。",
    "csv.encoding": "CSV 文件的编码无法识别，请用 Excel 另存为 .xlsx 后再发送。",
    "parse.failed": "无法读取这个文件，请确认它是用 Excel 或 WPS 保存的表格，或把内容复制到模板中再发送。",
    "parse.memory": "文件过于复杂，读取时超出了资源限制。请把内容复制到模板中再发送。",
    "parse.cpu": "文件过于复杂，读取超时。请把内容复制到模板中再发送。",
    "parse.timeout": "文件读取超时。请把内容复制到模板中再发送。",
}
REJECTED_DEFAULT = "无法读取这个文件，请把内容复制到模板中再发送。"
# Each rejection names its file: two files refused for the same reason are two messages.
REJECTED_HEAD = "【文件「{name}」】"

# -- The summary and submission (S6, M3) --------------------------------------------------------
SUMMARY_HEAD = "【会员年审汇总】"
SUMMARY_TOTAL = "在册会员 {total} 人；本次不通过 {removed} 人（{share}），继续在册 {remaining} 人。"
SUMMARY_REASONS = "退休 {retired} 人，离职 {resigned} 人，死亡 {deceased} 人。"
SUMMARY_NOBODY = "本次没有标记不通过的会员（全部通过也是有效的年审）。"
SUMMARY_HIGH = "⚠ 本次删除的会员较多（超过 {ratio} 或达到 {count} 人），上级工会会重点核实（S6）。"
SUMMARY_MISSING = (
    "还有 {n} 位继续在册的会员没有填写所在单位备注（联合工会必填，E4），填好后才能提交："
)
SUMMARY_ASK = "确认无误请回复「提交」；需要修改回复「列表」或「导入」。"
SUMMARY_ASK_MISSING = "请回复「列表」后按「备注 序号 所在单位」填写，或用文件的「所在单位」列。"
SUMMARY_HELP = "回复「提交」提交上级工会审核；回复「列表」或「导入」继续修改标记。"
SUMMARY_INVALID = "请回复「提交」，或回复「列表」「导入」继续修改。"

CONFIRM_HIGH = (
    "本次将删除 {removed} 名会员，占在册会员的 {share}，超过了提醒线。\n"
    "请核实无误后，回复「确认删除 {removed} 人」提交；回复「返回」继续修改。"
)
CONFIRM_HIGH_HELP = "删除人数较多，需要您输入「确认删除 N 人」（N 是本次删除的人数）才能提交。"
CONFIRM_MISMATCH = (
    "人数不对：本次标记删除的是 {removed} 人。请回复「确认删除 {removed} 人」，或「返回」修改。"
)
CONFIRM_INVALID = "请回复「确认删除 {removed} 人」确认提交，或回复「返回」继续修改。"

SUBMITTED = (
    "✅ 年审已提交（第 {round} 次提交），现等待 {union} 审核（第 1 级，共 {levels} 级）。"
    "审核结果会通知您，草稿已锁定。在第一级审核前，发送“撤回”可撤回修改。"
)
SUBMITTED_WAITING = "✅ 年审已提交。第一级审核单位目前没有登记审核人，已通知上级工会处理。"
ALREADY_SUBMITTED = "年审已经提交过了，不会重复提交。正在等待上级工会审核，结果会通知您。"
SUBMIT_FAILED = "提交没有成功：{why}。您的草稿已保存，请联系上级工会。"
SUBMIT_WHY = {
    "review.no_parent": "系统中没有找到本单位的上级工会",
    "review.completed": "本年度年审已经完成",
    "submit.not_contact": "您已不是本单位的年审联系人（账号已停用或角色已变更）",
    "review.changed": "草稿正在被同时修改（可能有其他联系人在操作），请稍后回复「完成」查看汇总再提交",
}
REOPENED = "您单位的年审已被退回，可以继续修改会员标记。"
NO_DRAFT = "没有找到可以继续的年审草稿。发送「年审」开始或查看本单位的年审。"
DONE_HELP = "年审已提交，等待审核。发送「进度」查看审核到了哪一级。"
