"""A realistic, deterministic demo dataset, written as the three import files.

The tree follows the 2016 Changzhou notice (DOMAIN.md): 常州市总工会 at the top; the district
and county-level federations (天宁区、钟楼区、新北区、武进区、金坛区、溧阳市) and industry unions
under it; grassroots unions (companies, bureaus' offices, schools, hospitals) and joint unions
(village and community 工会联合会) under those, with full names as on the seal (D1). Every unit
has a contact (联系人) and every federation approvers (审核人), all on WeCom with readable user
ids (``zhangwei01``). Members have valid ID numbers (real birth dates, correct check digit,
unique by construction), Chinese names, 19-digit card numbers and issue dates; members of joint
unions name their employer in the remark (E4).

Same ``seed`` and ``members`` give the same files. ``members`` scales to 1,000,000.

- :func:`generate` returns a :class:`DemoData` whose ``units()``, ``operators()`` and
  ``members()`` yield rows in the import header order (``services.imports.HEADERS``);
- :func:`write_demo_files` writes ``units``, ``operators`` and ``members`` files (.csv or .xlsx);
- :func:`load_demo` writes the files and imports them into a database (for ``demo`` and benches).
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import mul
from pathlib import Path
from typing import Any

from services import demo_tree_cases
from services.imports import HEADERS, KIND_NAMES, ImportReport, Progress, run_import
from services.validators import ID_CHECK, ID_WEIGHTS
from storage.models import UnionKind

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


@dataclass
class Unit:
    code: str
    name: str
    parent: str | None
    kind: UnionKind
    district: int  # index into DISTRICTS (region of its members)
    members: int = 0
    contact: tuple[str, str] = ("", "")  # (user id, name)
    approvers: list[tuple[str, str]] = field(default_factory=list)
    employers: tuple[str, ...] = ()  # joint unions: the small employers inside (E4)


class _Names:
    """Unique, readable user ids: ``zhangwei01``, ``zhangwei02`` ..."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, int] = {}

    def person(self) -> tuple[str, str, bool]:
        """(Chinese name, pinyin, female)."""
        s, sp = self.rng.choice(SURNAMES)
        female = self.rng.random() < 0.45
        g, gp = self.rng.choice(GIVEN_F if female else GIVEN_M)
        return s + g, sp + gp, female

    def operator(self) -> tuple[str, str]:
        name, py, _ = self.person()
        n = self.used.get(py, 0) + 1
        self.used[py] = n
        return f"{py}{n:02d}", name


def _mobile(rng: random.Random) -> str:
    return rng.choice(("139", "138", "137", "150", "151", "158", "187", "188", "135", "181")) + (
        f"{rng.randrange(10**8):08d}"
    )


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code with its GB 11714 check character."""
    body = f"{rng.randrange(10**8):08d}"
    s = sum(int(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    c = 11 - s % 11
    return body + ("X" if c == 10 else "0" if c == 11 else str(c))


def union_uscc(rng: random.Random, region: str) -> str:
    """A valid unified social credit code of a union (81 + region + organisation code + check)."""
    from stdnum.cn import uscc

    first17 = "81" + region + _org_code(rng)
    return first17 + uscc.calc_check_digit(first17 + "0")


class DemoData:
    """The dataset for ``members`` members and ``seed``; rows come out in import header order."""

    def __init__(self, members: int = 2000, seed: int = 2016) -> None:
        if not 0 <= members <= MAX_MEMBERS:
            raise ValueError(f"members must be between 0 and {MAX_MEMBERS:,}")
        self.n_members = members
        self.seed = seed
        self.rng = random.Random(seed)
        self.names = _Names(self.rng)
        self.units_list: list[Unit] = []
        self._build_tree()
        self._spread_members()

    # -- the tree --------------------------------------------------------------------------

    def _add(self, unit: Unit) -> Unit:
        self.units_list.append(unit)
        return unit

    def _build_tree(self) -> None:
        rng = self.rng
        city = self._add(Unit(CITY_CODE, CITY_NAME, None, UnionKind.city_federation, 0))
        city.contact = self.names.operator()
        city.approvers = [self.names.operator(), self.names.operator()]
        parents: list[Unit] = []
        for i, (suffix, place, _region, _towns) in enumerate(DISTRICTS):
            u = self._add(
                Unit(f"CZ-{suffix}", f"{place}总工会", CITY_CODE, UnionKind.district_federation, i)
            )
            parents.append(u)
        for suffix, name in INDUSTRIES:
            u = self._add(
                Unit(f"CZ-I{suffix}", name, CITY_CODE, UnionKind.industry_union, rng.randrange(3))
            )
            parents.append(u)
        for p in parents:
            p.contact = self.names.operator()
            p.approvers = [self.names.operator() for _ in range(rng.choice((1, 2)))]

        n_grass = max(len(parents) * 2, min(self.n_members // 150, 7000))
        counters: dict[str, int] = {}
        for k in range(n_grass):
            parent = parents[k % len(parents)] if k < len(parents) * 2 else rng.choice(parents)
            counters[parent.code] = counters.get(parent.code, 0) + 1
            code = f"{parent.code}-{counters[parent.code]:04d}"
            unit = self._grassroots(code, parent)
            unit.contact = self.names.operator()
            self._add(unit)

    def _grassroots(self, code: str, parent: Unit) -> Unit:
        rng = self.rng
        d = parent.district
        place = DISTRICTS[d][1]
        if parent.kind == UnionKind.industry_union:
            if "教育" in parent.name:
                name = f"{place}{rng.choice(SCHOOLS)}工会委员会"
            elif "卫生" in parent.name:
                name = f"{place}{rng.choice(HOSPITALS)}工会委员会"
            else:
                name = (
                    f"常州市{rng.choice(COMPANY_WORDS)}{rng.choice(('建设', '交通', '运输'))}"
                    f"{rng.choice(COMPANY_FORMS)}工会委员会"
                )
            return Unit(code, name, parent.code, UnionKind.grassroots, d)
        roll = rng.random()
        if roll < 0.18:
            town = rng.choice(DISTRICTS[d][3])
            village = rng.choice(VILLAGES if "镇" in town else COMMUNITIES)
            employers = tuple(
                f"{place}{town}{rng.choice(COMPANY_WORDS)}{e}"
                for e in rng.sample(SMALL_EMPLOYERS, 4)
            )
            return Unit(
                code,
                f"{place}{town}{village}工会联合会",
                parent.code,
                UnionKind.joint,
                d,
                employers=employers,
            )
        if roll < 0.25:
            return Unit(
                code,
                f"{place}{rng.choice(BUREAUS)}机关工会委员会",
                parent.code,
                UnionKind.grassroots,
                d,
            )
        prefix = "常州市" if rng.random() < 0.5 else place
        name = (
            f"{prefix}{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_TRADES)}"
            f"{rng.choice(COMPANY_FORMS)}工会委员会"
        )
        return Unit(code, name, parent.code, UnionKind.grassroots, d)

    def _spread_members(self) -> None:
        """Skewed unit sizes (a few large employers, many small ones), summing to n_members."""
        leaves = [u for u in self.units_list if u.kind.reviews]
        if not leaves or not self.n_members:
            return
        rng = self.rng
        weights = [rng.paretovariate(1.3) for _ in leaves]
        total = sum(weights)
        assigned = 0
        for u, w in zip(leaves, weights, strict=True):
            u.members = int(self.n_members * w / total)
            assigned += u.members
        for i in range(self.n_members - assigned):
            leaves[i % len(leaves)].members += 1

    # -- rows ------------------------------------------------------------------------------

    def units(self) -> Iterator[list[Any]]:
        """Rows for ``import units`` (HEADERS["units"] order)."""
        rng = random.Random(self.seed + 1)
        featured = self._featured_unit()
        for u in self.units_list:
            region = DISTRICTS[u.district][2][:4] + "00"
            registered = date(2012, 1, 1) + timedelta(days=rng.randrange(4 * 365))
            members = u.members if u.kind.reviews else None
            if members is not None:
                total = members + rng.randrange(0, max(members // 5, 1) + 3)
                if u is featured:  # counts that do not add up (issue 16)
                    members += FEATURED_DECLARED_EXTRA
                    total = max(total, members)
                female = int(total * rng.uniform(0.25, 0.6))
                dispatched = int(total * rng.uniform(0, 0.1))
                migrant = int(total * rng.uniform(0, 0.4))
            else:
                total = female = dispatched = migrant = None
            status = {
                UnionKind.joint: "已建立工会联合会",
                UnionKind.grassroots: "已建立工会",
            }.get(u.kind, "已建立工会")
            expiry = registered + timedelta(days=5 * 365 + rng.randrange(-400, 2000))
            yield [
                u.code,
                u.name,
                u.parent or "",
                KIND_NAMES[u.kind],
                registered.isoformat(),
                _s(total),
                _s(members),
                _s(female),
                _s(dispatched),
                _s(migrant),
                status,
                union_uscc(rng, region),
                expiry.isoformat(),
                u.contact[1],
                _mobile(rng),
            ]

    def operators(self) -> Iterator[list[Any]]:
        """Rows for ``import operators``: a contact per unit, approvers per federation."""
        for u in self.units_list:
            if u.contact[0]:
                yield [u.code, "wecom", u.contact[0], u.contact[1], "联系人"]
            for uid, name in u.approvers:
                yield [u.code, "wecom", uid, name, "审核人"]

    def members(self) -> Iterator[list[Any]]:
        """Rows for ``import members``; ID numbers unique by construction."""
        rng = random.Random(self.seed + 2)
        names = _Names(rng)
        # (region code, sequence offset): Changzhou's own regions three times over, so that
        # about half the members are locals, each copy using its own third of the sequence.
        regions = [(d[2], off) for d in DISTRICTS for off in (0, 334, 668)]
        regions += [(r, 0) for r in OTHER_REGIONS]
        per_region = BIRTH_DAYS * 166
        space = per_region * len(regions)  # (region, birth day, sequence / 2): unique IDs
        step = _coprime(space, rng)
        offset = rng.randrange(space)
        card_space = 10**12
        card_step = _coprime(card_space, rng)
        k = 0
        featured = self._featured_unit()
        for u in self.units_list:
            if not u.members:
                continue
            for i in range(u.members):
                code = (offset + k * step) % space
                k += 1
                region_i, rest = divmod(code, per_region)
                day, seq2 = divmod(rest, 166)
                region, seq_off = regions[region_i]
                name, _py, female = names.person()
                seq = seq_off + seq2 * 2 + (0 if female else 1)
                born = EARLIEST_BIRTH + timedelta(days=day)
                if u is featured and i < len(FEATURED_OLD_BIRTHS):
                    born = FEATURED_OLD_BIRTHS[i]
                first17 = f"{region}{born:%Y%m%d}{seq:03d}"
                id_number = first17 + _check_char(first17)
                card = f"6217{(k * card_step) % card_space:012d}{k % 1000:03d}"
                issued = CARD_FROM + timedelta(days=(k * 7919 + day) % CARD_DAYS)
                if issued < born + ADULT:
                    issued = born + ADULT + timedelta(days=k % 200)
                remark = rng.choice(u.employers) if u.employers else ""
                yield [u.code, id_number, name, card, issued.isoformat(), remark]

    def _featured_unit(self) -> Any:
        return next(u for u in self.units_list if u.kind == UnionKind.grassroots)

    def featured(self) -> dict[str, Any]:
        """Handy people for a demo: a grassroots contact, a joint union contact, approvers."""
        grass = next(u for u in self.units_list if u.kind == UnionKind.grassroots)
        joint = next((u for u in self.units_list if u.kind == UnionKind.joint), grass)
        parent = next(u for u in self.units_list if u.code == grass.parent)
        city = self.units_list[0]
        return {
            "contact": {"user_id": grass.contact[0], "name": grass.contact[1], "unit": grass.code},
            "joint_contact": {
                "user_id": joint.contact[0],
                "name": joint.contact[1],
                "unit": joint.code,
            },
            "approver": {
                "user_id": parent.approvers[0][0],
                "name": parent.approvers[0][1],
                "unit": parent.code,
            },
            "city_approver": {
                "user_id": city.approvers[0][0],
                "name": city.approvers[0][1],
                "unit": city.code,
            },
        }


_ID_OFFSET = 48 * sum(ID_WEIGHTS)


def _check_char(first17: str) -> str:
    """The ID check character (ISO 7064 MOD 11-2), from the ASCII codes in one pass."""
    return ID_CHECK[(sum(map(mul, first17.encode(), ID_WEIGHTS)) - _ID_OFFSET) % 11]


def _s(v: int | None) -> str:
    return "" if v is None else str(v)


def _coprime(n: int, rng: random.Random) -> int:
    from math import gcd

    while True:
        c = rng.randrange(n // 3, n - 1)
        if gcd(c, n) == 1:
            return c


def generate(members: int = 2000, seed: int = 2016) -> DemoData:
    return DemoData(members=members, seed=seed)


def write_demo_files(
    out_dir: Path | str,
    members: int = 2000,
    seed: int = 2016,
    fmt: str = "csv",
    progress: bool = False,
) -> dict[str, Path]:
    """Write ``units``, ``operators`` and ``members`` import files into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = generate(members, seed)
    paths: dict[str, Path] = {}
    for kind, rows in (
        ("units", data.units()),
        ("operators", data.operators()),
        ("members", data.members()),
    ):
        path = out / f"{kind}.{fmt}"
        if progress:
            print(f"writing {path} ...", file=sys.stderr)
        if fmt == "csv":
            _write_csv(path, HEADERS[kind], rows)
        elif fmt == "xlsx":
            _write_xlsx(path, HEADERS[kind], rows)
        else:
            raise ValueError(f"unknown format {fmt!r}")
        paths[kind] = path
    return paths


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterator[list[Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _write_xlsx(path: Path, header: tuple[str, ...], rows: Iterator[list[Any]]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")

    def cells(values: list[Any] | tuple[str, ...]) -> list[WriteOnlyCell]:
        out = []
        for v in values:
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"  # text, so ID and card numbers keep every digit
            out.append(c)
        return out

    ws.append(cells(header))
    for row in rows:
        ws.append(cells(row))
    wb.save(path)


async def load_demo(
    db: Any,
    members: int = 2000,
    seed: int = 2016,
    work_dir: Path | str | None = None,
    progress: Progress | None = None,
) -> dict[str, ImportReport]:
    """Write the demo files and import them into ``db`` (a ``storage.db.Database``)."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="uc-demo-", dir=work_dir) as tmp:
        paths = await asyncio.to_thread(write_demo_files, tmp, members, seed, "csv")
        reports: dict[str, ImportReport] = {}
        for kind in ("units", "operators", "members"):
            report = await run_import(db, kind, paths[kind], progress=progress)
            if not report.ok:
                raise RuntimeError(f"demo data did not import: {report.render()}")
            reports[kind] = report
        await demo_tree_cases.plant(db)  # issue 14: duplicates, a unit under the wrong parent
        return reports
