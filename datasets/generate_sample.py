"""Generate SchemaLab's bundled sample data set (datasets/sample/) from a fixed seed.

The sample is small on purpose: seven schemas over three complexity tiers, a few hundred short
examples whose every value is written in the prompt, a train and a test split, and one file of
deliberately broken records for the validator to find. Run it again and the files come out
byte for byte the same:

    python datasets/generate_sample.py            # writes datasets/sample/
    python datasets/generate_sample.py --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SEED = 20240611
N_TRAIN = 300
N_TEST = 60
HERE = Path(__file__).resolve().parent

FIRST = [
    "Amara",
    "Bastien",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kalani",
    "Leona",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Soren",
    "Tamsin",
    "Umar",
    "Vera",
    "Wendell",
    "Ximena",
    "Yusuf",
    "Zora",
]
LAST = [
    "Abernathy",
    "Bergstrom",
    "Castellano",
    "Delacroix",
    "Eriksen",
    "Fontaine",
    "Gallagher",
    "Haddad",
    "Ivanova",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Rasmussen",
    "Santoro",
    "Takahashi",
    "Valdez",
    "Whitfield",
]
COMPANIES = [
    "Bluefin Analytics",
    "Copperleaf Labs",
    "Driftwood Supply",
    "Emberline Foods",
    "Foxglove Media",
    "Granite Peak Tools",
    "Harborview Clinic",
    "Ironbark Logistics",
    "Juniper Robotics",
    "Kestrel Outfitters",
    "Lumen Textiles",
    "Maplestone Bakery",
]
CITIES = [
    ("Lisbon", "Portugal"),
    ("Oslo", "Norway"),
    ("Toronto", "Canada"),
    ("Osaka", "Japan"),
    ("Nairobi", "Kenya"),
    ("Valencia", "Spain"),
    ("Tallinn", "Estonia"),
    ("Denver", "USA"),
    ("Leeds", "UK"),
    ("Lyon", "France"),
    ("Porto", "Portugal"),
    ("Krakow", "Poland"),
]
AIRPORTS = ["LIS", "OSL", "YYZ", "KIX", "NBO", "VLC", "TLL", "DEN", "LBA", "LYS", "OPO", "KRK"]
PRODUCTS = [
    ("BRK-100", "brake pads"),
    ("CBL-220", "network cable"),
    ("FLT-310", "air filter"),
    ("GLV-045", "work gloves"),
    ("HNG-550", "door hinge"),
    ("LMP-120", "desk lamp"),
    ("MTR-900", "stepper motor"),
    ("PNL-075", "solar panel"),
    ("SCR-010", "wood screws"),
    ("TPE-066", "masking tape"),
    ("VLV-404", "check valve"),
    ("WSH-003", "steel washers"),
]
SKILLS = [
    "python",
    "sql",
    "docker",
    "figma",
    "excel",
    "rust",
    "kubernetes",
    "go",
    "tableau",
    "react",
    "spark",
    "linux",
]
CONDITIONS = ["clear", "cloudy", "rain", "snow", "fog", "windy"]
CATEGORIES = ["travel", "meals", "lodging", "supplies", "software"]
MILESTONE_STATUS = ["planned", "active", "blocked", "done"]


def _obj(properties: dict, required: list[str]) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _schema(title: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "description": description,
        **_obj(properties, required),
    }


STR = {"type": "string"}
NUM = {"type": "number", "minimum": 0}
INT = {"type": "integer", "minimum": 0}
DATE = {"type": "string", "format": "date"}

SCHEMAS = {
    ("simple", "contact_card"): _schema(
        "Contact card",
        "A person's name and how to reach them",
        {
            "full_name": STR,
            "email": {"type": "string", "format": "email"},
            "phone": STR,
            "company": STR,
        },
        ["full_name", "email"],
    ),
    ("simple", "weather_observation"): _schema(
        "Weather observation",
        "One reading from a weather station",
        {
            "station": STR,
            "observed_on": DATE,
            "temperature_c": {"type": "number"},
            "condition": {"type": "string", "enum": CONDITIONS},
            "humidity_pct": {"type": "integer", "minimum": 0, "maximum": 100},
        },
        ["station", "observed_on", "temperature_c", "condition"],
    ),
    ("medium", "job_posting"): _schema(
        "Job posting",
        "An advertised position",
        {
            "title": STR,
            "company": STR,
            "location": _obj({"city": STR, "country": STR}, ["city"]),
            "employment_type": {
                "type": "string",
                "enum": ["full-time", "part-time", "contract", "internship"],
            },
            "remote": {"type": "boolean"},
            "salary": _obj({"min": INT, "max": INT, "currency": STR}, ["min", "max"]),
            "skills": {"type": "array", "items": STR},
        },
        ["title", "company", "employment_type"],
    ),
    ("medium", "flight_booking"): _schema(
        "Flight booking",
        "A single-flight reservation",
        {
            "booking_ref": {"type": "string", "pattern": "^[A-Z0-9]{6}$"},
            "passenger": STR,
            "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "departure": {"type": "string", "format": "date-time"},
            "cabin": {"type": "string", "enum": ["economy", "premium", "business", "first"]},
            "fare": NUM,
            "checked_bags": INT,
        },
        ["booking_ref", "passenger", "origin", "destination", "departure"],
    ),
    ("medium", "expense_report"): _schema(
        "Expense report",
        "An employee's expense claim with a total",
        {
            "report_id": STR,
            "employee": STR,
            "submitted_on": DATE,
            "expenses": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "date": DATE,
                        "category": {"type": "string", "enum": CATEGORIES},
                        "amount": NUM,
                    },
                    ["category", "amount"],
                ),
            },
            "total": NUM,
            "currency": STR,
        },
        ["report_id", "employee", "expenses", "total"],
    ),
    ("complex", "purchase_order"): _schema(
        "Purchase order",
        "An order to a vendor with priced line items and derived totals",
        {
            "po_number": STR,
            "order_date": DATE,
            "buyer": _obj({"name": STR, "email": {"type": "string", "format": "email"}}, ["name"]),
            "vendor": _obj({"name": STR, "city": STR, "country": STR}, ["name"]),
            "line_items": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "sku": STR,
                        "description": STR,
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit_price": NUM,
                        "discount_pct": {"type": "number", "minimum": 0, "maximum": 100},
                        "line_total": NUM,
                    },
                    ["description", "quantity", "unit_price", "line_total"],
                ),
            },
            "subtotal": NUM,
            "shipping": NUM,
            "tax": NUM,
            "total": NUM,
        },
        ["po_number", "order_date", "vendor", "line_items", "total"],
    ),
    ("complex", "project_status"): _schema(
        "Project status",
        "A project's milestones and budget",
        {
            "project": STR,
            "owner": _obj({"name": STR, "email": {"type": "string", "format": "email"}}, ["name"]),
            "milestones": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "name": STR,
                        "due": DATE,
                        "status": {"type": "string", "enum": MILESTONE_STATUS},
                        "percent_complete": {"type": "integer", "minimum": 0, "maximum": 100},
                    },
                    ["name", "status"],
                ),
            },
            "budget": _obj(
                {"allocated": NUM, "spent": NUM, "remaining": {"type": "number"}},
                ["allocated", "spent", "remaining"],
            ),
        },
        ["project", "milestones", "budget"],
    ),
}

# A schema that only ever travels inline with its records (the third record shape).
SHIPPING_LABEL = _schema(
    "Shipping label",
    "Where a parcel goes and how heavy it is",
    {"tracking_number": STR, "recipient": STR, "city": STR, "weight_kg": NUM},
    ["tracking_number", "recipient", "city"],
)

RULES_YAML = """\
# Arithmetic rules for the sample's schemas: each derived number must equal its expression
# (within `tolerance`). See datasets/README.md for the syntax.
tolerance: 0.02
schemas:
  purchase_order:
    - each: $.line_items
      check: line_total
      equals: quantity * unit_price * (1 - (discount_pct or 0) / 100)
    - check: subtotal
      equals: sum(line_items[*].line_total)
    - check: total
      equals: (subtotal or sum(line_items[*].line_total)) + (shipping or 0) + (tax or 0)
  expense_report:
    - check: total
      equals: sum(expenses[*].amount)
  project_status:
    - check: budget.remaining
      equals: budget.allocated - budget.spent
"""


def money(value: float) -> float:
    return round(value + 1e-9, 2)


def fmt_money(rng: random.Random, value: float) -> str:
    """Numbers written the way people write them: 1234.5, 1,234.50 or $1,234.50."""
    style = rng.randrange(3)
    if style == 0:
        return f"{value:.2f}"
    if style == 1:
        return f"{value:,.2f}"
    return f"${value:,.2f}"


def date(rng: random.Random, year0: int = 2023) -> str:
    return f"{rng.randint(year0, year0 + 1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email_of(name: str, domain: str) -> str:
    return f"{name.lower().replace(' ', '.')}@{domain}"


def domain_of(company: str) -> str:
    return re.sub(r"[^a-z]", "", company.lower())[:12] + ".example"


# --- one maker per schema: returns (prompt, expected_output) -----------------------------------


def make_contact(rng):
    name, company = person(rng), rng.choice(COMPANIES)
    out = {
        "full_name": name,
        "email": email_of(name, domain_of(company)),
        "phone": f"+{rng.randint(1, 49)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
    }
    if rng.random() < 0.6:
        out["company"] = company
    at = f" at {company}" if "company" in out else ""
    prompt = rng.choice(
        [
            f"Name: {name}\nEmail: {out['email']}\nPhone: {out['phone']}"
            + (f"\nCompany: {company}" if at else ""),
            f"Hi, I'm {name}{at}. Reach me on {out['phone']} or write to {out['email']}.",
            f"-- \n{name}\n{company if at else ''}\nt. {out['phone']}\ne. {out['email']}",
            (
                f"Please add {name}{at} to the address book (email {out['email']}, "
                f"mobile {out['phone']})."
            ),
        ]
    )
    return prompt, out


def make_weather(rng):
    city, _ = rng.choice(CITIES)
    out = {
        "station": f"{city} {rng.choice(['Airport', 'Harbour', 'North', 'Hill'])}",
        "observed_on": date(rng),
        "temperature_c": round(rng.uniform(-12, 36), 1),
        "condition": rng.choice(CONDITIONS),
    }
    if rng.random() < 0.7:
        out["humidity_pct"] = rng.randint(15, 99)
    hum = out.get("humidity_pct")
    prompt = rng.choice(
        [
            f"Station: {out['station']}\nDate: {out['observed_on']}\nTemp: {out['temperature_c']} C\n"
            f"Sky: {out['condition']}" + (f"\nHumidity: {hum}%" if hum else ""),
            f"On {out['observed_on']} the {out['station']} station logged {out['temperature_c']} "
            f"degrees Celsius under {out['condition']} conditions"
            + (f", relative humidity {hum} percent." if hum else "."),
            f"{out['station']} | {out['observed_on']} | {out['temperature_c']}C | {out['condition']}"
            + (f" | RH {hum}" if hum else ""),
        ]
    )
    return prompt, out


def make_job(rng):
    city, country = rng.choice(CITIES)
    title = rng.choice(
        [
            "Data Analyst",
            "Backend Engineer",
            "Product Designer",
            "Site Reliability Engineer",
            "QA Specialist",
            "Technical Writer",
        ]
    )
    out = {
        "title": title,
        "company": rng.choice(COMPANIES),
        "location": {"city": city, "country": country},
        "employment_type": rng.choice(["full-time", "part-time", "contract", "internship"]),
        "remote": rng.random() < 0.5,
    }
    lo = rng.randrange(30, 90) * 1000
    out["salary"] = {
        "min": lo,
        "max": lo + rng.randrange(5, 30) * 1000,
        "currency": rng.choice(["EUR", "USD", "GBP"]),
    }
    out["skills"] = rng.sample(SKILLS, rng.randint(1, 3))
    s = out["salary"]
    where = "remote-friendly" if out["remote"] else "on-site"
    prompt = rng.choice(
        [
            (
                f"{out['company']} is hiring a {title} ({out['employment_type']}, {where}) in {city}, "
                f"{country}. Pay: {s['min']:,}-{s['max']:,} {s['currency']}. "
                f"Must know {', '.join(out['skills'])}."
            ),
            (
                f"JOB: {title}\nEMPLOYER: {out['company']}\nLOCATION: {city}, {country}\n"
                f"TYPE: {out['employment_type']}\nREMOTE: {'yes' if out['remote'] else 'no'}\n"
                f"SALARY: {s['currency']} {s['min']} to {s['max']}\nSKILLS: {' / '.join(out['skills'])}"
            ),
            (
                f"We need a {out['employment_type']} {title} at our {city} ({country}) office; "
                f"{where}. Budget {s['min']} - {s['max']} {s['currency']} a year. "
                f"Skills: {', '.join(out['skills'])}. -- {out['company']}"
            ),
        ]
    )
    return prompt, out


def make_flight(rng):
    a, b = rng.sample(AIRPORTS, 2)
    ref = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
    out = {
        "booking_ref": ref,
        "passenger": person(rng),
        "origin": a,
        "destination": b,
        "departure": f"{date(rng, 2024)}T{rng.randint(5, 22):02d}:{rng.choice([0, 15, 30, 45]):02d}:00",
        "cabin": rng.choice(["economy", "premium", "business", "first"]),
        "fare": money(rng.uniform(60, 1900)),
        "checked_bags": rng.randint(0, 2),
    }
    fare = fmt_money(rng, out["fare"])
    prompt = rng.choice(
        [
            (
                f"Booking {ref} confirmed for {out['passenger']}: {a} to {b}, departing "
                f"{out['departure']}, {out['cabin']} cabin, {out['checked_bags']} checked bag(s), "
                f"fare {fare}."
            ),
            (
                f"PNR {ref}\nPAX {out['passenger']}\nFROM {a} TO {b}\nDEP {out['departure']}\n"
                f"CLASS {out['cabin']}\nBAGS {out['checked_bags']}\nTOTAL FARE {fare}"
            ),
            (
                f"Your trip: {a} -> {b} on {out['departure']}. Passenger {out['passenger']}, reference "
                f"{ref}. Cabin: {out['cabin']}. Bags: {out['checked_bags']}. Paid {fare}."
            ),
        ]
    )
    return prompt, out


def make_expense(rng):
    n = rng.randint(1, 3)
    items = [
        {
            "date": date(rng, 2024),
            "category": rng.choice(CATEGORIES),
            "amount": money(rng.uniform(8, 420)),
        }
        for _ in range(n)
    ]
    out = {
        "report_id": f"EXP-{rng.randint(1000, 9999)}",
        "employee": person(rng),
        "submitted_on": date(rng, 2024),
        "expenses": items,
        "total": money(sum(i["amount"] for i in items)),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
    }
    if rng.random() < 0.5:
        lines = "\n".join(
            f"- {i['date']} {i['category']}: {fmt_money(rng, i['amount'])}" for i in items
        )
        prompt = (
            f"Expense report {out['report_id']} from {out['employee']}, submitted "
            f"{out['submitted_on']} ({out['currency']}):\n{lines}\nTotal claimed: "
            f"{fmt_money(rng, out['total'])}"
        )
    else:
        lines = "; ".join(f"{i['category']} on {i['date']} for {i['amount']}" for i in items)
        prompt = (
            f"{out['employee']} filed {out['report_id']} on {out['submitted_on']}: "
            f"{lines}. All amounts in {out['currency']}, total {out['total']}."
        )
    return prompt, out


def make_purchase_order(rng):
    items = []
    for sku, desc in rng.sample(PRODUCTS, rng.randint(1, 3)):
        item = {
            "sku": sku,
            "description": desc,
            "quantity": rng.randint(1, 40),
            "unit_price": money(rng.uniform(0.5, 180)),
        }
        if rng.random() < 0.3:
            item["discount_pct"] = rng.choice([5, 10, 15, 20])
        factor = 1 - item.get("discount_pct", 0) / 100
        item["line_total"] = money(item["quantity"] * item["unit_price"] * factor)
        items.append(item)
    vendor, (city, country) = rng.choice(COMPANIES), rng.choice(CITIES)
    buyer = person(rng)
    subtotal = money(sum(i["line_total"] for i in items))
    out = {
        "po_number": f"PO-{rng.randint(10000, 99999)}",
        "order_date": date(rng, 2024),
        "buyer": {"name": buyer, "email": email_of(buyer, "buyer.example")},
        "vendor": {"name": vendor, "city": city, "country": country},
        "line_items": items,
    }
    if rng.random() < 0.8:
        out["subtotal"] = subtotal
    out["shipping"] = money(rng.choice([0, 9.5, 14.0, 25.0, 40.0]))
    out["tax"] = money(subtotal * rng.choice([0.05, 0.08, 0.2]))
    out["total"] = money(subtotal + out["shipping"] + out["tax"])

    def line(i):
        off = f" less {i['discount_pct']}%" if "discount_pct" in i else ""
        return (
            f"{i['sku']} {i['description']} x{i['quantity']} @ "
            f"{fmt_money(rng, i['unit_price'])}{off} = {fmt_money(rng, i['line_total'])}"
        )

    lines = "\n".join(line(i) for i in items)
    sub = f"Subtotal {fmt_money(rng, subtotal)}\n" if "subtotal" in out else ""
    head = rng.choice(
        [
            (
                f"PURCHASE ORDER {out['po_number']} ({out['order_date']})\nVendor: {vendor}, {city}, "
                f"{country}\nBuyer: {buyer} <{out['buyer']['email']}>"
            ),
            (
                f"{buyer} ({out['buyer']['email']}) placed order {out['po_number']} with {vendor} of "
                f"{city}, {country} on {out['order_date']}."
            ),
        ]
    )
    prompt = (
        f"{head}\n{lines}\n{sub}Shipping {fmt_money(rng, out['shipping'])}\n"
        f"Tax {fmt_money(rng, out['tax'])}\nTotal due {fmt_money(rng, out['total'])}"
    )
    return prompt, out


def make_project(rng):
    owner = person(rng)
    names = rng.sample(
        [
            "design review",
            "beta launch",
            "data migration",
            "security audit",
            "user testing",
            "go live",
        ],
        rng.randint(1, 3),
    )
    ms = []
    for name in names:
        m = {"name": name, "due": date(rng, 2024), "status": rng.choice(MILESTONE_STATUS)}
        if rng.random() < 0.6:
            m["percent_complete"] = 100 if m["status"] == "done" else rng.randrange(0, 95, 5)
        ms.append(m)
    allocated = float(rng.randrange(20, 400) * 500)
    spent = money(allocated * rng.uniform(0.1, 1.1))
    out = {
        "project": f"Project {rng.choice(['Atlas', 'Beacon', 'Cobalt', 'Delta', 'Ember'])} "
        f"{rng.randint(2, 9)}",
        "owner": {"name": owner, "email": email_of(owner, "pm.example")},
        "milestones": ms,
        "budget": {"allocated": allocated, "spent": spent, "remaining": money(allocated - spent)},
    }

    def line(m):
        pct = f" ({m['percent_complete']}% complete)" if "percent_complete" in m else ""
        return f"* {m['name']}: due {m['due']}, {m['status']}{pct}"

    b = out["budget"]
    prompt = (
        f"Status update for {out['project']}, owner {owner} ({out['owner']['email']}).\n"
        + "\n".join(line(m) for m in ms)
        + f"\nBudget: {fmt_money(rng, b['allocated'])} allocated, "
        f"{fmt_money(rng, b['spent'])} spent, {fmt_money(rng, b['remaining'])} remaining."
    )
    return prompt, out


def make_label(rng):
    city, _ = rng.choice(CITIES)
    out = {
        "tracking_number": f"TRK{rng.randint(10**8, 10**9 - 1)}",
        "recipient": person(rng),
        "city": city,
        "weight_kg": round(rng.uniform(0.2, 25), 1),
    }
    prompt = rng.choice(
        [
            (
                f"Ship to {out['recipient']}, {city}. Parcel {out['tracking_number']}, "
                f"{out['weight_kg']} kg."
            ),
            (
                f"TRACKING: {out['tracking_number']}\nTO: {out['recipient']}\nCITY: {city}\n"
                f"WEIGHT: {out['weight_kg']}kg"
            ),
        ]
    )
    return prompt, out


MAKERS = {
    "contact_card": make_contact,
    "weather_observation": make_weather,
    "job_posting": make_job,
    "flight_booking": make_flight,
    "expense_report": make_expense,
    "purchase_order": make_purchase_order,
    "project_status": make_project,
}
TIER = {sid: tier for tier, sid in SCHEMAS}


def record(rng, n: int, split: str, schema_id: str) -> dict:
    """One JSONL record in one of the three shapes real data sets use."""
    if schema_id == "shipping_label":
        prompt, out = make_label(rng)
        return {
            "id": f"sample_{split}_{n:04d}",
            "schema_id": schema_id,
            "schema": SHIPPING_LABEL,
            "prompt": prompt,
            "expected_output": out,
        }
    prompt, out = MAKERS[schema_id](rng)
    if schema_id == "expense_report":  # the shape without complexity, named by schema_name
        return {
            "id": f"sample_{split}_{n:04d}",
            "schema_name": schema_id,
            "prompt": prompt,
            "expected_output": out,
        }
    return {
        "id": f"sample_{split}_{n:04d}",
        "schema_id": schema_id,
        "complexity": TIER[schema_id],
        "source": "generate_sample.py",
        "prompt": prompt,
        "expected_output": out,
    }


def generate_split(rng, split: str, n: int, seen: set[str]) -> list[dict]:
    """`n` records cycling over the schemas, every prompt new (no duplicates, no leaks)."""
    order = list(MAKERS) + ["shipping_label"]
    weights = [1, 1, 1, 1, 1, 1, 1, 0.35]
    records: list[dict] = []
    while len(records) < n:
        schema_id = rng.choices(order, weights)[0]
        rec = record(rng, len(records) + 1, split, schema_id)
        key = " ".join(rec["prompt"].lower().split())
        if key in seen:
            continue
        seen.add(key)
        records.append(rec)
    return records


def broken_lines(rng, train: list[dict]) -> list[bytes]:
    """One file of records with one problem each, so the validator has something to show."""

    def dumps(rec):
        return json.dumps(rec, ensure_ascii=False).encode("utf-8")

    good = record(rng, 1, "broken", "contact_card")
    bad_schema = record(rng, 3, "broken", "contact_card")
    bad_schema["expected_output"]["email"] = "not-an-email"
    bad_schema["prompt"] += " (email not-an-email)"
    bad_schema["expected_output"]["nickname"] = bad_schema["expected_output"]["full_name"]
    arith = record(rng, 4, "broken", "purchase_order")
    arith["expected_output"]["total"] = money(arith["expected_output"]["total"] + 100)
    arith["prompt"] += f"\nAmount payable {arith['expected_output']['total']}"
    ungrounded = record(rng, 5, "broken", "weather_observation")
    ungrounded["expected_output"]["station"] = "Reykjavik Lighthouse"
    dup = dict(good, id="sample_broken_0006")
    missing = record(rng, 7, "broken", "flight_booking")
    del missing["expected_output"]
    unknown = record(rng, 8, "broken", "job_posting")
    unknown["schema_id"] = "boarding_pass"
    return [
        dumps(good),
        b'{"id": "sample_broken_0002", "schema_id": "contact_card", "prompt": "Name: Ada',
        dumps(bad_schema),
        dumps(arith),
        dumps(ungrounded),
        dumps(dup),
        dumps(missing),
        dumps(unknown),
        b'["sample_broken_0009", "a list where an object belongs"]',
        (
            b'{"id": "sample_broken_0010", "schema_id": "contact_card", "prompt": "Caf\xe9 owner '
            b'Lu Wei, lu@cafe.example", "expected_output": {"full_name": "Lu Wei", '
            b'"email": "lu@cafe.example"}}'
        ),
        dumps(record(rng, 11, "broken", "weather_observation")),
    ]


def write(out_dir: Path) -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    train = generate_split(rng, "train", N_TRAIN, seen)
    test = generate_split(rng, "test", N_TEST, seen)
    for (tier, schema_id), schema in SCHEMAS.items():
        path = out_dir / "schemas" / tier / f"{schema_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    (out_dir / "schemas" / "rules.yaml").write_text(RULES_YAML, encoding="utf-8")
    for name, records in (("train", train), ("test", test)):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (out_dir / f"{name}.jsonl").write_text(text, encoding="utf-8")
    (out_dir / "broken.jsonl").write_bytes(b"\n".join(broken_lines(rng, train)) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "sample", help="output folder")
    args = parser.parse_args()
    write(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
