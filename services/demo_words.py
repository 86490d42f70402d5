"""The demo dataset's vocabulary (DOMAIN.md, 2016 Changzhou): districts and their towns, industry
unions, surnames and given names, company, bureau, school, hospital, village and community names,
and the ranges of birth and card-issue dates."""

from __future__ import annotations

from datetime import date, timedelta

MAX_MEMBERS = 1_000_000
CITY_CODE = "CZ"
CITY_NAME = "常州市总工会"

# (code suffix, name, ID region code, towns/streets)
DISTRICTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("TN", "常州市天宁区", "320402", ("雕庄街道", "红梅街道", "天宁街道", "茶山街道", "郑陆镇")),
    ("ZL", "常州市钟楼区", "320404", ("五星街道", "永红街道", "北港街道", "西林街道", "邹区镇")),
    ("XB", "常州市新北区", "320411", ("河海街道", "三井街道", "龙虎塘街道", "薛家镇", "罗溪镇")),
    ("WJ", "常州市武进区", "320412", ("湖塘镇", "牛塘镇", "洛阳镇", "遥观镇", "雪堰镇")),
    ("JT", "常州市金坛区", "320413", ("金城镇", "儒林镇", "直溪镇", "薛埠镇", "指前镇")),
    ("LY", "溧阳市", "320481", ("溧城镇", "埭头镇", "上黄镇", "天目湖镇", "别桥镇")),
)
INDUSTRIES: tuple[tuple[str, str], ...] = (
    ("JY", "常州市教育工会"),
    ("WJW", "常州市卫生健康工会"),
    ("JS", "常州市建设系统工会"),
    ("JT", "常州市交通运输工会"),
)
# ID regions for members born elsewhere (migrant workers)
OTHER_REGIONS = (
    "320102", "320282", "320583", "321002", "321181", "341222", "341221", "342401",
    "410523", "411302", "510722", "511025", "522121", "430521", "362330", "370883",
)  # fmt: skip

SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("蒋", "jiang"), ("蔡", "cai"), ("丁", "ding"),
    ("钱", "qian"), ("史", "shi"), ("顾", "gu"), ("恽", "yun"), ("庄", "zhuang"),
)  # fmt: skip
GIVEN_M: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"),
    ("平", "ping"), ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("建国", "jianguo"),
    ("志强", "zhiqiang"), ("海峰", "haifeng"), ("俊杰", "junjie"), ("文斌", "wenbin"),
    ("国庆", "guoqing"), ("建军", "jianjun"), ("晓东", "xiaodong"), ("浩然", "haoran"),
    ("宇航", "yuhang"), ("子豪", "zihao"), ("振华", "zhenhua"), ("立新", "lixin"),
)  # fmt: skip
GIVEN_F: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("艳", "yan"), ("娟", "juan"), ("霞", "xia"), ("婷", "ting"), ("雪", "xue"),
    ("秀英", "xiuying"), ("桂英", "guiying"), ("丽华", "lihua"), ("玉兰", "yulan"),
    ("海燕", "haiyan"), ("晓红", "xiaohong"), ("雅琴", "yaqin"), ("欣怡", "xinyi"),
    ("梦洁", "mengjie"), ("佳怡", "jiayi"), ("思雨", "siyu"), ("春梅", "chunmei"),
)  # fmt: skip

COMPANY_WORDS = (
    "天合", "恒立", "东风", "常柴", "黑牡丹", "新科", "亚邦", "中天", "金昇", "华利达",
    "龙城", "江南", "常发", "星宇", "安泰", "瑞声", "明阳", "腾龙", "永安", "精研",
    "华光", "双良", "博瑞", "宏达", "正昌", "远东", "新亚", "天马", "国茂", "聚和",
)  # fmt: skip
COMPANY_TRADES = (
    "机械制造", "电子科技", "纺织", "新材料", "光伏科技", "汽车部件", "精密模具", "化工",
    "食品", "物流", "建材", "医疗器械", "电气", "智能装备", "服饰",
)  # fmt: skip
COMPANY_FORMS = ("有限公司", "股份有限公司", "集团有限公司")
BUREAUS = ("市场监督管理局", "自然资源和规划局", "生态环境局", "人力资源和社会保障局", "财政局")
SCHOOLS = ("实验小学", "外国语学校", "高级中学", "中等专业学校", "第一中学")
HOSPITALS = ("第一人民医院", "中医医院", "妇幼保健院", "第二人民医院")
VILLAGES = ("新华村", "东升村", "长沟村", "前进村", "三河口村", "塘桥村", "陈家村", "永胜村")
COMMUNITIES = ("红梅新村社区", "清潭社区", "花园社区", "丽华社区", "翠竹社区", "北港社区")
SMALL_EMPLOYERS = ("五金厂", "服装厂", "塑料制品厂", "家具厂", "农机站", "超市", "饭店", "物业公司")

EARLIEST_BIRTH = date(1962, 1, 1)
LATEST_BIRTH = date(2005, 12, 31)
BIRTH_DAYS = (LATEST_BIRTH - EARLIEST_BIRTH).days + 1
CARD_FROM = date(2010, 3, 1)
CARD_DAYS = (date(2026, 10, 31) - CARD_FROM).days + 1
ADULT = timedelta(days=18 * 365 + 5)
# Issue 16 in the demo: the featured grassroots unit (the first) has older members (its first
# ones, born before EARLIEST_BIRTH so their ID numbers stay unique: past 60, past 55, and one
# over 100, a probable data error) and declares more members than its roster (the hint line).
FEATURED_OLD_BIRTHS = (date(1958, 3, 14), date(1961, 7, 2), date(1960, 11, 8), date(1921, 1, 1))
FEATURED_DECLARED_EXTRA = 22
