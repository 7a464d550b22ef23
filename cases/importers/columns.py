"""The canonical placement columns, their built-in aliases (English and Chinese) and header resolution.

The canonical set is documented in docs/placement-format.md; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Column:
    key: str
    label: object  # lazy translated label
    required: bool = False
    aliases: tuple[str, ...] = ()


COLUMNS: tuple[Column, ...] = (
    Column("external_ref", _("External reference"), True,
           ("external reference", "external ref", "reference", "ref", "account no", "account number", "loan id",
            "contract no", "合同编号", "合同号", "借据号", "借据编号", "贷款编号", "案件编号", "账户编号", "账号", "订单号")),
    Column("borrower_name", _("Borrower name"), True,
           ("borrower name", "name", "customer name", "借款人姓名", "借款人", "姓名", "客户姓名", "客户名称")),
    Column("national_id", _("National ID"), False,
           ("national id", "id number", "id card", "resident id", "身份证号", "身份证号码", "身份证", "证件号码", "证件号")),
    Column("phones", _("Phone(s)"), False,
           ("phone", "phones", "mobile", "mobile phone", "telephone", "手机号", "手机号码", "手机", "联系电话", "电话",
            "电话号码", "备用手机号", "备用电话")),
    Column("email", _("Email"), False, ("email", "e-mail", "email address", "邮箱", "电子邮箱", "电子邮件")),
    Column("address", _("Address"), False, ("address", "home address", "地址", "家庭住址", "联系地址", "住址", "户籍地址")),
    Column("region", _("Region"), False, ("region", "province", "state", "地区", "所在地区", "省份", "城市")),
    Column("time_zone", _("Time zone"), False, ("time zone", "timezone", "tz", "时区")),
    Column("jurisdiction", _("Jurisdiction"), False, ("jurisdiction", "country", "司法辖区", "国家")),
    Column("product", _("Product"), False, ("product", "product name", "产品", "产品名称", "贷款产品")),
    Column("principal", _("Principal"), False, ("principal", "loan amount", "本金", "借款本金", "贷款本金", "借款金额")),
    Column("balance", _("Outstanding balance"), True,
           ("outstanding balance", "balance", "outstanding", "amount due", "overdue amount", "逾期金额", "欠款金额",
            "未还金额", "剩余应还", "应还金额", "逾期总额", "欠款余额")),
    Column("currency", _("Currency"), False, ("currency", "ccy", "币种", "货币")),
    Column("due_date", _("Due date"), True,
           ("due date", "due", "到期日", "到期日期", "应还日期", "应还款日", "还款日")),
    Column("last_payment_date", _("Last payment date"), False,
           ("last payment date", "last paid", "最后还款日", "最后还款日期", "上次还款日期")),
    # Optional parts of the outstanding balance (finance.AccountBalance); the rest of the balance is principal.
    Column("interest", _("Interest"), False, ("interest", "interest due", "利息", "逾期利息", "应还利息")),
    Column("fees", _("Fees"), False, ("fees", "fee", "charges", "费用", "手续费", "服务费")),
    Column("costs", _("Costs"), False, ("costs", "collection costs", "成本", "催收成本", "诉讼费用")),
)
BY_KEY = {c.key: c for c in COLUMNS}
REQUIRED = tuple(c.key for c in COLUMNS if c.required)

# Recall files carry only the reference (and optionally a reason).
RECALL_COLUMNS: tuple[Column, ...] = (
    BY_KEY["external_ref"],
    Column("reason", _("Reason"), False, ("reason", "note", "原因", "撤案原因", "备注")),
)


def normalise(header: object) -> str:
    """Header text compared case-, space- and punctuation-insensitively ("Due_Date " == "due date")."""
    text = str(header or "").strip().lstrip("\ufeff").lower()
    text = re.sub(r"[\s_\-.:：（）()]+", " ", text)
    return text.strip()


def _alias_table(columns: tuple[Column, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for col in columns:
        table[normalise(col.key)] = col.key
        for alias in col.aliases:
            table[normalise(alias)] = col.key
    return table


@dataclass
class HeaderMap:
    """Result of matching a file's header row: which canonical field each column position feeds."""

    positions: list[tuple[int, str, str]]  # (index, canonical key, header as written)
    ignored: list[str]
    missing: list[str]
    duplicates: list[str]


def resolve_header(
    headers: list[object], *, mapping: dict[str, str] | None = None, kind: str = "placement"
) -> HeaderMap:
    """Match headers: the lender's saved mapping first, then the built-in aliases.

    Several columns may feed ``phones`` (e.g. 手机号 and 备用手机号); any other field given twice is an error.
    """
    columns = RECALL_COLUMNS if kind == "recall" else COLUMNS
    valid_keys = {c.key for c in columns}
    table = _alias_table(columns)
    own = {normalise(k): v for k, v in (mapping or {}).items() if v in valid_keys}
    positions, ignored, duplicates, seen = [], [], [], set()
    for i, raw in enumerate(headers):
        name = normalise(raw)
        if not name:
            continue
        key = own.get(name) or table.get(name)
        if key is None:
            ignored.append(str(raw))
            continue
        if key in seen and key != "phones":
            duplicates.append(str(raw))
            continue
        seen.add(key)
        positions.append((i, key, str(raw).strip().lstrip("\ufeff")))
    required = ("external_ref",) if kind == "recall" else REQUIRED
    missing = [k for k in required if k not in seen]
    return HeaderMap(positions=positions, ignored=ignored, missing=missing, duplicates=duplicates)
