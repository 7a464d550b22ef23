"""Version-1 contact policies for US, US-MA, CN and AU, and the later versions, as plain data (see the
package docstring). Each version is also frozen as JSON beside the migration that seeds it."""

from __future__ import annotations

import copy

from .model import CHANNELS, CONVERSATION_OUTCOMES, NOT_CONNECTED_OUTCOMES, OUTCOMES, PLACED_OUTCOMES
from .zones import JURISDICTION_ZONES

# The outcomes as version 1 knew them (OUTCOMES has grown since; v1 must stay exactly as published).
_V1_OUTCOMES = [o for o in OUTCOMES if o != "unreported"]
_CONNECTED = [o for o in _V1_OUTCOMES if o not in NOT_CONNECTED_OUTCOMES]
_ALL_CHANNELS = list(CHANNELS)
_ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _holds(citations: dict[str, str]) -> list[dict]:
    return [
        {"type": "hold", "code": f"HOLD.{flag.upper()}", "citation": citation, "flag": flag}
        for flag, citation in citations.items()
    ]


_US_RULES: list[dict] = [
    *_holds(
        {
            "cease": "15 USC 1692c(c); 12 CFR 1006.6(c)",
            "dispute": "15 USC 1692g(b); 12 CFR 1006.38(d)(2)",
            "attorney": "15 USC 1692c(a)(2); 12 CFR 1006.6(b)(2)",
            "bankruptcy": "11 USC 362(a) (automatic stay)",
            "deceased": "Internal policy: deceased borrower (estate handling only)",
        }
    ),
    {
        "type": "time_window",
        "code": "US.FDCPA.TIME_OF_DAY",
        "citation": "15 USC 1692c(a)(1); 12 CFR 1006.6(b)(1)(i)",
        "channels": ["call", "sms", "email", "visit"],
        "windows": [{"days": _ALL_DAYS, "start": "08:00", "end": "21:00"}],
    },
    {
        "type": "frequency",
        "code": "US.REGF.CALL_FREQUENCY",
        "citation": "12 CFR 1006.14(b)(2)(i)(A)",
        "channels": ["call"],
        "parties": ["borrower"],
        "count_channels": ["call"],
        "count_outcomes": _CONNECTED,
        "period": "rolling",
        "days": 7,
        "max": 7,
        "scope": "account",
        "label": "calls",
    },
    {
        "type": "cooldown",
        "code": "US.REGF.POST_CONVERSATION",
        "citation": "12 CFR 1006.14(b)(2)(i)(B)",
        "channels": ["call"],
        "parties": ["borrower"],
        "trigger_channels": ["call"],
        "trigger_outcomes": list(CONVERSATION_OUTCOMES),
        "days": 7,
        "scope": "account",
        "label": "telephone conversation",
    },
]

_MA_RULES: list[dict] = [
    *copy.deepcopy(_US_RULES),
    {
        "type": "frequency",
        "code": "US-MA.940CMR.TELEPHONE_FREQUENCY",
        "citation": "940 CMR 7.04(1)(f)",
        "channels": ["call", "sms"],
        "parties": ["borrower"],
        "count_channels": ["call", "sms"],
        "count_outcomes": _CONNECTED,
        "period": "rolling",
        "days": 7,
        "max": 2,
        "scope": "account",
        "label": "telephone communications (calls or texts)",
    },
]

_CN_GUIDELINE = "China Banking Association consumer-credit collection guideline"
_CN_STANDARD = "National standard on post-loan collection of internet consumer credit"

_CN_RULES: list[dict] = [
    *_holds(
        {
            "cease": f"{_CN_GUIDELINE}: borrower's request to stop contact",
            "dispute": f"{_CN_GUIDELINE}: handling of disputed debts",
            "attorney": f"{_CN_GUIDELINE}: borrower represented by a lawyer",
            "bankruptcy": "Enterprise Bankruptcy Law / personal insolvency proceedings",
            "deceased": "Internal policy: deceased borrower (estate handling only)",
        }
    ),
    {
        "type": "time_window",
        "code": "CN.QUIET_HOURS",
        "citation": f"{_CN_GUIDELINE}; {_CN_STANDARD} (no collection contact 22:00–08:00)",
        "channels": ["call", "sms", "email", "visit"],
        "windows": [{"days": _ALL_DAYS, "start": "08:00", "end": "22:00"}],
        "consent_waives": True,
    },
    {
        "type": "frequency",
        "code": "CN.UNANSWERED_PER_NUMBER",
        "citation": f"{_CN_STANDARD} (call attempts per number per day)",
        "channels": ["call"],
        "count_channels": ["call"],
        "count_outcomes": [*NOT_CONNECTED_OUTCOMES, "voicemail"],
        "period": "day",
        "max": 6,
        "scope": "number",
        "label": "unanswered call attempts",
    },
    {
        "type": "frequency",
        "code": "CN.CONVERSATIONS_PER_DAY",
        "citation": f"{_CN_STANDARD} (conversations with the borrower per day)",
        "channels": ["call"],
        "count_channels": ["call"],
        "count_outcomes": list(CONVERSATION_OUTCOMES),
        "period": "day",
        "max": 3,
        "scope": "borrower",
        "label": "phone conversations",
    },
    {
        "type": "third_party",
        "code": "CN.THIRD_PARTY",
        "citation": f"{_CN_GUIDELINE}; {_CN_STANDARD} (third parties only when the borrower is unreachable)",
        "channels": _ALL_CHANNELS,
        "days": 3,
        "min_attempts": 3,
        "attempt_channels": ["call"],
        "failed_outcomes": list(NOT_CONNECTED_OUTCOMES),
        "contact_outcomes": list(CONVERSATION_OUTCOMES),
        "scope": "borrower",
    },
]

#: Australian national public holidays (incl. substitute days), 2025-2028.
AU_NATIONAL_HOLIDAYS = [
    # 2025
    "2025-01-01",  # New Year's Day
    "2025-01-27",  # Australia Day (observed; 26 Jan is a Sunday)
    "2025-04-18",  # Good Friday
    "2025-04-21",  # Easter Monday
    "2025-04-25",  # Anzac Day
    "2025-12-25",  # Christmas Day
    "2025-12-26",  # Boxing Day
    # 2026
    "2026-01-01",
    "2026-01-26",
    "2026-04-03",
    "2026-04-06",
    "2026-04-25",  # Anzac Day (Saturday)
    "2026-12-25",
    "2026-12-26",  # Boxing Day (Saturday)
    "2026-12-28",  # Boxing Day substitute (Monday)
    # 2027
    "2027-01-01",
    "2027-01-26",
    "2027-03-26",
    "2027-03-29",
    "2027-04-25",  # Anzac Day (Sunday)
    "2027-12-25",  # Christmas Day (Saturday)
    "2027-12-26",  # Boxing Day (Sunday)
    "2027-12-27",  # Christmas Day substitute (Monday)
    "2027-12-28",  # Boxing Day substitute (Tuesday)
    # 2028
    "2028-01-01",  # New Year's Day (Saturday)
    "2028-01-03",  # New Year's Day substitute (Monday)
    "2028-01-26",
    "2028-04-14",
    "2028-04-17",
    "2028-04-25",
    "2028-12-25",
    "2028-12-26",
]

_AU_GUIDELINE = "ACCC/ASIC Debt collection guideline for collectors and creditors (2021)"

_AU_RULES: list[dict] = [
    *_holds(
        {
            "cease": f"{_AU_GUIDELINE}: debtor's request to stop or limit contact",
            "dispute": f"{_AU_GUIDELINE}: disputed debts",
            "attorney": f"{_AU_GUIDELINE}: debtor's representative",
            "bankruptcy": "Bankruptcy Act 1966 (Cth) s 58(3)",
            "deceased": "Internal policy: deceased borrower (estate handling only)",
        }
    ),
    {
        "type": "time_window",
        "code": "AU.CONTACT_HOURS",
        "citation": f"{_AU_GUIDELINE}: reasonable contact hours; no contact on national public holidays",
        "channels": ["call"],
        "windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:30", "end": "21:00"},
            {"days": ["sat", "sun"], "start": "09:00", "end": "21:00"},
        ],
        "closed_dates": AU_NATIONAL_HOLIDAYS,
    },
    {
        "type": "frequency",
        "code": "AU.CONTACTS_PER_WEEK",
        "citation": f"{_AU_GUIDELINE}: frequency of contact (3 per week)",
        "channels": _ALL_CHANNELS,
        "parties": ["borrower"],
        "count_channels": _ALL_CHANNELS,
        "count_outcomes": _CONNECTED,
        "period": "rolling",
        "days": 7,
        "max": 3,
        "scope": "account",
        "label": "contacts",
    },
    {
        "type": "frequency",
        "code": "AU.CONTACTS_PER_MONTH",
        "citation": f"{_AU_GUIDELINE}: frequency of contact (10 per month)",
        "channels": _ALL_CHANNELS,
        "parties": ["borrower"],
        "count_channels": _ALL_CHANNELS,
        "count_outcomes": _CONNECTED,
        "period": "rolling",
        "days": 30,
        "max": 10,
        "scope": "account",
        "label": "contacts",
    },
]


def _policy(code: str, name: str, rules: list[dict]) -> dict:
    return {"code": code, "version": 1, "name": name, "effective_from": "2020-01-01", "rules": copy.deepcopy(rules)}


SEED_POLICIES: list[dict] = [
    _policy("US", "United States (FDCPA / Regulation F)", _US_RULES),
    _policy("US-MA", "Massachusetts (FDCPA / Regulation F + 940 CMR 7.00)", _MA_RULES),
    _policy("CN", "China (CBA guideline / internet consumer-credit collection standard)", _CN_RULES),
    _policy("AU", "Australia (ACCC/ASIC Debt collection guideline)", _AU_RULES),
]


# Later versions. CN v2 (2026): the daily conversation cap limits calls to the borrower only (v1
# also refused calls to third parties once it was reached), and field visits need two collectors.
_CN_V2_RULES: list[dict] = [
    {**r, "parties": ["borrower"]} if r["code"] == "CN.CONVERSATIONS_PER_DAY" else r for r in _CN_RULES
] + [
    {
        "type": "team",
        "code": "CN.VISIT_TWO_COLLECTORS",
        "citation": f"{_CN_GUIDELINE}; {_CN_STANDARD} (home visits by at least two collectors)",
        "channels": ["visit"],
        "min_collectors": 2,
    },
]

# ---- December 2026: the record counts what the law counts --------------------------------------
# Effective from their publication (2026-12-03); every earlier version stays for replay.
# - Reg F and 940 CMR count calls *placed*: only calls that never reach the number (busy, not in
#   service, failed) are left out; an unanswered call, a voicemail and a call never reported count.
# - Reg F's 7-day wait follows any telephone conversation, whoever called (inbound too).
# - Holds that concern the person rather than one debt (cease, bankruptcy, deceased) reach every
#   lender's record of that person; China's daily caps count per person across the platform.
# - SMS and email need consent and honour an opt-out, in the one gate.
# - Australia's hours cover every contact type (face to face 9:00-21:00), no contact on public holidays.
# - Each version names its jurisdiction's time zones: with no known zone, all of them apply.
_V3_DATE = "2026-12-03"
_PLACED = list(PLACED_OUTCOMES)
_PERSON_HOLDS = ("cease", "bankruptcy", "deceased")


def _scoped_holds(rules: list[dict]) -> list[dict]:
    return [{**r, "scope": "person"} if r["type"] == "hold" and r["flag"] in _PERSON_HOLDS else r for r in rules]


def _consent(code: str, citation: str) -> dict:
    return {"type": "consent", "code": code, "citation": citation, "channels": ["sms", "email"]}


def _us_v2_rules() -> list[dict]:
    out = []
    for r in _scoped_holds(copy.deepcopy(_US_RULES)):
        if r["code"] == "US.REGF.CALL_FREQUENCY":
            r = {**r, "count_outcomes": _PLACED}
        elif r["code"] == "US.REGF.POST_CONVERSATION":
            r = {**r, "trigger_directions": ["outbound", "inbound"], "count_outcomes": _PLACED}
        out.append(r)
    out.append(_consent("US.REGF.ELECTRONIC_OPT_OUT", "12 CFR 1006.6(d)(3), 1006.6(e)"))
    return out


def _ma_v2_rules() -> list[dict]:
    return [*_us_v2_rules(), {**copy.deepcopy(_MA_RULES[-1]), "count_outcomes": _PLACED}]


_CN_PERSON_SCOPE = {"CN.CONVERSATIONS_PER_DAY": "person", "CN.THIRD_PARTY": "person"}


def _cn_v3_rules() -> list[dict]:
    out = []
    for r in _scoped_holds(copy.deepcopy(_CN_V2_RULES)):
        if r["code"] in _CN_PERSON_SCOPE:
            r = {**r, "scope": _CN_PERSON_SCOPE[r["code"]]}
        out.append(r)
    out.append(_consent("CN.MESSAGE_CONSENT", f"{_CN_STANDARD} (messages only with consent; honour unsubscribe 退订)"))
    return out


def _au_v2_rules() -> list[dict]:
    out = []
    for r in _scoped_holds(copy.deepcopy(_AU_RULES)):
        if r["code"] == "AU.CONTACT_HOURS":
            r = {**r, "code": "AU.CONTACT_HOURS", "channels": ["call", "sms", "email"],
                 "citation": f"{_AU_GUIDELINE}: reasonable contact hours (telephone and electronic); no contact on"
                             " national public holidays"}
            out.append(r)
            out.append({
                "type": "time_window",
                "code": "AU.FACE_TO_FACE_HOURS",
                "citation": f"{_AU_GUIDELINE}: face-to-face contact 9:00-21:00; no contact on national public holidays",
                "channels": ["visit"],
                "windows": [{"days": _ALL_DAYS, "start": "09:00", "end": "21:00"}],
                "closed_dates": AU_NATIONAL_HOLIDAYS,
            })
            continue
        out.append(r)
    out.append(_consent("AU.ELECTRONIC_CONSENT", f"{_AU_GUIDELINE}: electronic communication (consent, opt-out)"))
    return out


def _v3(code: str, version: int, name: str, rules: list[dict], description: str) -> dict:
    return {"code": code, "version": version, "name": name, "effective_from": _V3_DATE, "description": description,
            "zones": list(JURISDICTION_ZONES[code]), "rules": rules}


_COUNTING = ("Counts calls placed (only busy, not-in-service and failed calls are left out); the 7-day wait"
             " follows any telephone conversation, inbound too; cease, bankruptcy and deceased reach every"
             " lender's record of the person; SMS/email need consent and honour opt-outs; with no known time"
             " zone every zone of the jurisdiction applies.")

POLICY_UPDATES: list[dict] = [
    {**_policy("CN", "China (CBA guideline / internet consumer-credit collection standard)", _CN_V2_RULES),
     "version": 2, "effective_from": "2026-01-01"},
]

#: Published 2026-12-03 (migration compliance/0007), frozen in policies_v3.json.
POLICY_UPDATES_2026_12: list[dict] = [
    _v3("US", 2, "United States (FDCPA / Regulation F)", _us_v2_rules(), _COUNTING),
    _v3("US-MA", 2, "Massachusetts (FDCPA / Regulation F + 940 CMR 7.00)", _ma_v2_rules(),
        _COUNTING + " 940 CMR 7.04(1)(f) counts unanswered calls and texts too (Armata v. Target, 2018)."),
    _v3("CN", 3, "China (CBA guideline / internet consumer-credit collection standard)", _cn_v3_rules(),
        "Daily conversation caps and the third-party rule count per person across every lender on the platform;"
        " cease, bankruptcy and deceased reach every lender's record; messages need consent and honour 退订."),
    _v3("AU", 2, "Australia (ACCC/ASIC Debt collection guideline)", _au_v2_rules(),
        "Contact hours for every contact type: telephone and electronic messages weekdays 7:30-21:00 and"
        " weekends 9:00-21:00, face to face 9:00-21:00; none on national public holidays. Letters are not"
        " time-bound (posting is not contact at a time). Holds and consent as in the other jurisdictions."),
]
POLICY_UPDATES.extend(POLICY_UPDATES_2026_12)
