"""Every user-facing sentence of the DingTalk channel (Chinese)."""

from bot.wecom.texts import (  # the same words on both platforms
    BUSY,
    FILE_DOWNLOAD_FAILED,
    FILE_NO_NAME,
    FILE_RECEIVED,
    FILE_TOO_LARGE,
)

GROUP = "请在单聊中与我对话：点开我的头像，发起单聊即可办理年审。"
UNSUPPORTED = (
    "暂不支持这种消息。请发送文字；如需上传名单文件，请发送 Excel/CSV 文件或使用上传链接。"
)
CARD_UNKNOWN = "这张卡片已失效，请回复「待审核」查看待审核的年审。"

__all__ = [
    "BUSY",
    "CARD_UNKNOWN",
    "FILE_DOWNLOAD_FAILED",
    "FILE_NO_NAME",
    "FILE_RECEIVED",
    "FILE_TOO_LARGE",
    "GROUP",
    "UNSUPPORTED",
]
