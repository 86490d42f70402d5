"""Chinese text of the 工作台 command."""

CMD = ("工作台", "打开工作台")
MENU_KEYS = ("workbench",)
LINK = "工作台（总览、批量审核、单位进度）请点击打开：\n{url}"
NOT_OPERATOR = "您不是任何工会的联系人或审核人，无法使用工作台。如有疑问请联系上级工会。"
