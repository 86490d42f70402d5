"""Every user-facing sentence of the WeCom channel and the H5 upload page (Chinese)."""

FILE_RECEIVED = "已收到文件，正在处理…处理结果稍后发送给您。"
UNSUPPORTED = (
    "暂不支持这种消息。请发送文字；如需上传名单文件，请发送 Excel/CSV 文件或使用上传链接。"
)
BUSY = "系统繁忙，请稍后再试。"
FILE_DOWNLOAD_FAILED = "文件下载失败，请重新发送，或使用上传链接上传。"
FILE_TOO_LARGE = "文件过大（超过 {mb} MB），请精简后重新发送。"
FILE_NO_NAME = "未能识别文件名，请重新发送，或使用上传链接上传。"

H5_TITLE = "上传名单文件"
H5_INTRO = "请选择 Excel（.xlsx / .xls）或 CSV 文件上传。上传后，处理结果会发送到企业微信聊天中。"
H5_PICK = "选择文件"
H5_SUBMIT = "上传"
H5_DONE_TITLE = "上传成功"
H5_DONE = "已收到文件“{name}”，正在处理。请回到聊天窗口查看结果。"
H5_BAD_TYPE = "只能上传 .xlsx、.xls 或 .csv 文件，请重新选择。"
H5_EMPTY = "没有收到文件，请重新选择。"
H5_BAD_NAME = (
    "文件名中有无法识别的字符。请把文件改成普通的名字（例如「会员名单.xlsx」）后重新上传。"
)
H5_TOO_LARGE = "文件过大（超过 {mb} MB），请精简后重新上传。"
H5_PENDING_FULL = (
    "您已有约 {mb} MB 的文件在等待处理（每人最多 {limit} MB）。"
    "请等聊天中收到前面文件的处理结果后再上传；这个链接仍然可以使用。"
)
H5_FORBIDDEN_TITLE = "链接不可用"
H5_FORGED = "这个上传链接无效。请回到聊天窗口重新获取上传链接。"
H5_EXPIRED = "这个上传链接已过期（有效期 30 分钟）。请回到聊天窗口重新获取上传链接。"
H5_USED = "这个上传链接已经使用过（每个链接只能上传一次）。请回到聊天窗口重新获取上传链接。"
