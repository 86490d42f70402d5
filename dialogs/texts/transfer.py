"""Chinese text of the member transfer-in flow (E3, 补录) and the tree request cards."""

CMD = ("新增会员", "补录", "会员补录")
ASK_ID = "会员补录（E3）：请发送会员的身份证号码（18 位）。发送“取消”退出。"
ASK_NAME = "请发送会员的姓名。"
ASK_CARD = "请发送会员的工会卡号（没有请回复“无”）。"
NO_CARD = ("无", "没有", "暂无")
CONFIRM = "{preview}\n\n回复“确认”提交，回复“取消”放弃。"
CONFIRM_WORDS = ("确认", "确定", "是")
CANCEL_WORDS = ("取消", "放弃", "否")
CANCELLED = "已取消，未做任何变更。"
ADDED = "已登记：{name} 已成为本单位会员。"
REQUESTED = "已向 {unit} 发送转出申请，对方同意后会员即转入本单位，结果会通知您。"
HELP = "按提示依次发送身份证号码、姓名、工会卡号，最后回复“确认”。发送“取消”退出。"
STAGE = "会员补录"
NOT_FOUND = "没有找到这条申请，可能已失效。"
