"""Generate data/concepts/pii.jsonl: synthetic sentences with character-offset PII spans.

    .venv/bin/python scripts/make_pii.py                 # writes data/concepts/pii.jsonl
    .venv/bin/python scripts/make_pii.py --out x.jsonl   # somewhere else (the tests do this)

Every person, address, number and account in the output is invented by Faker (seeded, so the
file is reproducible with the pinned Faker version on any day: dates come from a fixed range, not
from today's date). Sentences come from hand-written templates:
positive templates contain entity slots such as ``{NAME}`` or ``{IBAN}``; negative templates
contain no PII but many contain near-misses: numbers, codes, prices, times, weekdays, versions,
company and city names, and PII-ish context words ("invoice", "call", "card details") without
an actual identifier. Filler slots (``{CITY}``, ``{PRICE}`` ...) never produce spans.

Whole templates go to train or test (about 70/30, separately for positive and negative
templates), so a test sentence never shares its template with a training sentence.
"""
from __future__ import annotations

import json
import random
from datetime import date
import re
import sys
from collections import Counter
from pathlib import Path

from faker import Faker

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "concepts" / "pii.jsonl"
SEED = 0
TEST_FRACTION = 0.3
N_PER_LABEL = 600
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL"]
TYPES = ("NAME", "EMAIL", "PHONE", "ADDRESS", "DATE", "IBAN", "CREDIT_CARD", "IP_ADDRESS")

POSITIVE = [
    "Please send the invoice to {EMAIL} by the end of the week.",
    "My name is {NAME} and I'm calling about my account.",
    "You can reach {FIRST} on {PHONE} after five.",
    "{NAME} was born on {DATE}.",
    "Ship the package to {ADDRESS}, and leave it with a neighbour if nobody answers.",
    "The refund will go to IBAN {IBAN} within three working days.",
    "I paid with card {CARD} but was charged twice.",
    "A login attempt from {IP} was blocked at {TIME}.",
    "Hi {FIRST}, your appointment is confirmed for {DATE}.",
    "Contact: {NAME}, {PHONE}, {EMAIL}",
    "Patient {NAME}, date of birth {DATE}, lives at {ADDRESS}.",
    "Please transfer the deposit to {IBAN} and use {NAME} as the reference.",
    "Dear {NAME}, thank you for your order of {COUNT} items.",
    "Forwarding this to {EMAIL} since {FIRST} is out of office.",
    "Our new tenant, {NAME}, moves into {ADDRESS} on {DATE}.",
    "Call me back at {PHONE} when you get this.",
    "The server logs show repeated requests from {IP}.",
    "{FIRST} asked me to update the billing card to {CARD}.",
    "Emergency contact: {NAME} ({PHONE}).",
    "I've moved! My new address is {ADDRESS}.",
    "Wire details: account holder {NAME}, IBAN {IBAN}.",
    "Can you check why {EMAIL} isn't receiving our newsletter?",
    "The certificate was issued to {NAME} on {DATE}.",
    "Suspicious purchase on card {CARD} at {TIME}; please confirm it was you.",
    "As agreed on the phone, {FIRST} will drop the keys at {ADDRESS}.",
    "Reply to {EMAIL} or text {PHONE} to reschedule.",
    "User {EMAIL} logged in from {IP} on {DATE}.",
    "The lease was signed by {NAME} and {NAME}.",
    "{NAME}'s salary will be paid into {IBAN} from next month.",
    "{FIRST} left a note: call {PHONE} about the boiler.",
    "Delivery for {NAME}, {ADDRESS}: leave it at the back door.",
    "My card number {CARD} was declined even though I have funds.",
    "Today's visitor is {NAME}, arriving on {DATE} with the {COMPANY} team.",
    "The booking under {NAME} for {DATE} has been cancelled.",
    "Send the signed form to {EMAIL}; questions go to {PHONE}.",
    "Block {IP}, it has been scanning our ports since last night.",
    "I, {NAME}, authorise the direct debit from {IBAN}.",
    "{FIRST} said the party is at {ADDRESS} on {DATE}.",
    "Please update my phone number to {PHONE}; the old one no longer works.",
    "The parcel addressed to {ADDRESS} was returned to the sender.",
    "Invoice {TICKET} is payable to {NAME}, IBAN {IBAN}, due {DATE}.",
    "Please charge the remaining balance of {PRICE} to {CARD}.",
    "Our records show {NAME} at {EMAIL}, last active from {IP}.",
    "Congratulations {FIRST}, you've been invited to an interview on {DATE}!",
    "Rent is due on the first; pay {NAME} directly or transfer it to {IBAN}.",
    "For support, {NAME} can be reached at {EMAIL}.",
    "The witness, {NAME}, gave a statement on {DATE}.",
    "Meet me outside {ADDRESS} at {TIME}.",
    "Card {CARD}, holder {NAME}, expires in two months.",
    "I think {EMAIL} is the address {FIRST} uses for work.",
    "Text {FIRST} at {PHONE} if the train to {CITY} is late.",
    "The passport lists a date of birth of {DATE}.",
    "Access from {IP} and {IP} was flagged as unusual.",
    "Hello, this is {NAME} from the {ORD} floor; my direct line is {PHONE}.",
    "The hotel holds your reservation with card {CARD}.",
    "The refund was issued to {CARD}, the card used for the original purchase.",
    "Your router's public address is {IP}.",
    "Salary account: {IBAN}.",
    "Return address: {ADDRESS}.",
    "Happy birthday, {FIRST}! Born on {DATE} and still going strong.",
    "Hi team, quick update: {NAME} from {COMPANY} joins us on {DATE}, so please add {EMAIL} to the project channel before then.",
    "If the courier cannot deliver to {ADDRESS}, they should call {PHONE} and ask for {FIRST}, who works from home most days.",
    "The bank confirmed that the transfer of {PRICE} from {IBAN} arrived late because of the holiday, so no fee will be charged.",
    "Security flagged two logins from {IP} within a minute, so the account for {EMAIL} is locked until the owner resets the password.",
    "According to the form, {NAME} was born on {DATE}, lives at {ADDRESS}, and prefers to be contacted by email rather than by phone.",
    "The card {CARD} was used at three different petrol stations in one afternoon, which our fraud team thinks is unusual for this customer.",
]

NEGATIVE = [
    "Please send the report to the whole team by the end of {WEEKDAY}.",
    "The meeting moved to Room {ROOM} on the {ORD} floor.",
    "We sold {COUNT} units of the {PRODUCT} last quarter.",
    "Version {VERSION} fixes the crash when saving large files.",
    "The train to {CITY} leaves at {TIME} from platform {SMALL}.",
    "{COMPANY} reported revenue of {PRICE} million this year.",
    "Order {SMALL} more boxes of paper before {WEEKDAY}, or the printers will run out.",
    "The temperature dropped to {TEMP} degrees overnight.",
    "Our {JOB} team is hiring {SMALL} new people before the end of the year.",
    "Chapter {SMALL} explains how the {PRODUCT} works and how to clean it safely.",
    "The recipe needs {SMALL} eggs, {COUNT} grams of flour and a pinch of salt.",
    "Turn left after the {COLOR} building and keep going for {SMALL} blocks.",
    "The {PRODUCT} costs {PRICE} including tax, with free delivery this week.",
    "The museum on the main square in {CITY} opens at {TIME}.",
    "{COUNT} people signed up for the {CITY} marathon this year.",
    "Flight {FLIGHT} is delayed by {SMALL} hours because of fog at the airport.",
    "Product code {SKU} is out of stock until next month.",
    "The {COMPANY} office closes early on {WEEKDAY}s during the summer months.",
    "Page {COUNT} of the manual lists the error codes for the {PRODUCT}.",
    "The bridge is {COUNT} metres long and took {SMALL} years to build.",
    "Battery life is about {SMALL} hours on a full charge, less if the screen is bright.",
    "We still need {SMALL} volunteers for the {WEEKDAY} shift at the food bank.",
    "Great talk! The slides about {TOPIC} were really clear.",
    "Add {PCT} percent more water if the dough feels dry.",
    "Ticket {TICKET} was closed as a duplicate of an older report about the login page.",
    "The {PRODUCT} ships in {COLOR} and silver, with a matching case for an extra fee.",
    "It takes about {SMALL} minutes to walk from the station to {LANDMARK}.",
    "The population of {CITY} grew by {PCT} percent over the last ten years.",
    "Please keep the noise down after {TIME}; the walls in this building are thin.",
    "The quarterly review is on {WEEKDAY}, so bring your notes on {TOPIC}.",
    "The score at half time was {SMALL} to {SMALL}, and the second half was even better.",
    "The {JOB} explained the new safety rules to everyone.",
    "Reset the counter to zero after every {COUNT} cycles.",
    "The {COMPANY} app update added a dark mode and fixed the slow search.",
    "Item {SKU} weighs {TEMP} kilograms, so it ships as a bulky parcel.",
    "I ordered the {COLOR} one, not the black one, so I will send this back.",
    "Thank you all for coming to the {TOPIC} workshop today.",
    "The invoice total is {PRICE}, payable within {SMALL} days.",
    "Call the front desk if the room is too {ADJ}, and they will send someone up.",
    "Send an email to the {JOB} team when the build finishes.",
    "The new address format puts the postcode before the {ADDRPART}.",
    "Enter your card details on the next page to pay the {PRICE}.",
    "Your account number will be shown after you log in to {COMPANY}.",
    "The birthday party is on {WEEKDAY} at {TIME}, and everyone should bring a dish.",
    "Error {ERRNO}: connection refused by the server, so try again in a few minutes.",
    "The serial number of the {PRODUCT} is printed under the battery.",
    "Transaction {TICKET} completed in {SMALL} seconds without any warnings.",
    "Our {TOPIC} reading group meets every other {WEEKDAY} in {CITY}.",
    "The {PRODUCT} scored {SMALL} out of ten in the review.",
    "Dial extension {ROOM} for the {JOB} on duty if the main line is busy.",
    "The {COMPANY} quarterly report shows {PCT} percent growth, mostly from the {PRODUCT} line, and the board meets on {WEEKDAY} to discuss it.",
    "If the {PRODUCT} shows error {ERRNO}, unplug it for {SMALL} minutes, plug it back in, and wait for the {COLOR} light to stop blinking.",
    "Our {JOB} team moved to the {ORD} floor, so the printer in Room {ROOM} is now shared with the people from {COMPANY}.",
    "The bus to {CITY} runs every {SMALL} minutes on weekdays, but on {WEEKDAY} evenings the last one leaves at {TIME}.",
    "Please read chapters {SMALL} and {SMALL} before the {TOPIC} seminar, and bring one question you would like the group to discuss.",
    "The warehouse counted {COUNT} boxes of the {PRODUCT}, which is {PCT} percent fewer than the system says we should have.",
    "After the update to version {VERSION}, the app opens faster, uses less battery, and no longer forgets your {COLOR} theme.",
    "Tickets for the concert at {LANDMARK} cost {PRICE} each, and the doors open at {TIME} for the support act.",
    "Remember to call the front desk before {TIME} if you need a late checkout, because the cleaners start on the {ORD} floor.",
    "We can send you an email reminder {SMALL} days before your appointment if you tick the box on the {COMPANY} booking page.",
]

PRODUCTS = ["Nimbus 3 kettle", "Falcon X2 drone", "AquaPro filter", "Orbit desk lamp", "Vega bike",
            "Model T-400 printer", "Cirrus air purifier", "Atlas backpack", "Quill e-reader",
            "Polaris tent", "Echo S7 speaker", "Granite blender", "Zephyr fan", "Tundra boots"]
JOBS = ["engineering", "design", "sales", "support", "finance", "research", "logistics",
        "marketing", "security", "nursing", "teaching", "legal"]
COLORS = ["red", "blue", "green", "yellow", "grey", "orange", "purple", "white", "brown", "teal"]
TOPICS = ["Machine Learning", "Climate Policy", "Roman History", "Urban Gardening", "Jazz Piano",
          "Data Privacy", "Quantum Computing", "Medieval Art", "Public Health", "Bird Migration"]
LANDMARKS = ["the Old Harbour", "Central Library", "the Botanic Garden", "St. Mary's Church",
             "the National Gallery", "Victoria Park", "the Town Hall", "the Science Museum"]
ORDINALS = ["second", "third", "fourth", "fifth", "sixth", "seventh", "ninth", "twelfth"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ADJS = ["cold", "warm", "noisy", "dark", "stuffy", "bright"]
ADDRPARTS = ["city", "street name", "house number", "country"]
# Dates are drawn between fixed calendar days, never relative to today, so the file is byte-identical on
# any day. The range is "80 years before to one year after" the reference day on which the committed
# file was made (the same bounds Faker's relative "-80y"/"+1y" gave on that day).
REFERENCE_DATE = date(2026, 11, 22)
DATE_RANGE = (date(1946, 11, 22), date(2027, 11, 22))
DATE_FORMATS = ["%B %d, %Y", "%d %B %Y", "%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%b %d, %Y"]


class Generator:
    """Fills template slots from a seeded Faker and a seeded ``random.Random``."""

    def __init__(self, seed: int = SEED):
        self.fake = Faker(LOCALES)
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    def _locale(self):
        return self.fake[self.rng.choice(LOCALES)]

    def entity(self, slot: str) -> tuple[str, str | None]:
        """Return (value, PII type or None for filler slots)."""
        r, f = self.rng, self.fake
        if slot == "NAME":
            loc = self._locale()
            return f"{loc.first_name()} {loc.last_name()}", "NAME"
        if slot == "FIRST":
            return self._locale().first_name(), "NAME"
        if slot == "EMAIL":
            return r.choice([f.email, f.free_email, f.company_email])(), "EMAIL"
        if slot == "PHONE":
            return self._locale().phone_number(), "PHONE"
        if slot == "ADDRESS":
            return self._locale().street_address().replace("\n", ", "), "ADDRESS"
        if slot == "DATE":
            d = f.date_between_dates(date_start=DATE_RANGE[0], date_end=DATE_RANGE[1])
            return d.strftime(r.choice(DATE_FORMATS)), "DATE"
        if slot == "IBAN":
            iban = self._locale().iban()
            if r.random() < 0.5:  # the printed form, in groups of four
                iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
            return iban, "IBAN"
        if slot == "CARD":
            card = f.credit_card_number()
            if len(card) == 16 and r.random() < 0.5:
                card = " ".join(card[i:i + 4] for i in range(0, 16, 4))
            return card, "CREDIT_CARD"
        if slot == "IP":
            return f.ipv4_public(), "IP_ADDRESS"
        fillers = {
            "CITY": lambda: self._locale().city(),
            "COMPANY": lambda: f.company(),
            "WEEKDAY": lambda: r.choice(WEEKDAYS),
            "TIME": lambda: f"{r.randint(6, 22)}:{r.choice(['00', '15', '30', '45', '05', '50'])}",
            "ROOM": lambda: str(r.randint(100, 999)),
            "ORD": lambda: r.choice(ORDINALS),
            "COUNT": lambda: f"{r.randint(12, 9000):,}" if r.random() < 0.5 else str(r.randint(12, 900)),
            "SMALL": lambda: str(r.randint(2, 12)),
            "PRICE": lambda: f"{r.choice(['$', '€', '£'])}{r.randint(3, 4000):,}.{r.randint(0, 99):02d}",
            "VERSION": lambda: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
            "TEMP": lambda: f"{r.randint(-9, 35)}.{r.randint(0, 9)}",
            "PCT": lambda: str(r.randint(2, 60)),
            "PRODUCT": lambda: r.choice(PRODUCTS),
            "JOB": lambda: r.choice(JOBS),
            "COLOR": lambda: r.choice(COLORS),
            "TOPIC": lambda: r.choice(TOPICS),
            "LANDMARK": lambda: r.choice(LANDMARKS),
            "ADJ": lambda: r.choice(ADJS),
            "ADDRPART": lambda: r.choice(ADDRPARTS),
            "FLIGHT": lambda: f"{r.choice(['BA', 'LH', 'AF', 'KL', 'UA', 'EZ'])}{r.randint(100, 9999)}",
            "SKU": lambda: f"{''.join(r.choices('ABCDEFGHKLMNPRSTX', k=3))}-{r.randint(1000, 99999)}",
            "TICKET": lambda: f"#{r.randint(10000, 9999999)}",
            "ERRNO": lambda: str(r.choice([400, 401, 403, 404, 408, 429, 500, 502, 503, 504])),
        }
        if slot not in fillers:
            raise KeyError(f"unknown slot {{{slot}}}")
        return fillers[slot](), None

    def fill(self, template: str) -> tuple[str, list[dict]]:
        """Fill one template; return the text and its spans (sorted, non-overlapping)."""
        parts, spans, pos = [], [], 0
        for piece in re.split(r"(\{[A-Z]+\})", template):
            if piece.startswith("{") and piece.endswith("}"):
                value, kind = self.entity(piece[1:-1])
                if kind is not None:
                    spans.append({"start": pos, "end": pos + len(value), "type": kind, "value": value})
                piece = value
            parts.append(piece)
            pos += len(piece)
        return "".join(parts), spans


def split_templates(templates: list[str], rng: random.Random) -> list[str]:
    """Assign whole templates to train/test, ~TEST_FRACTION of the templates of every PII type.

    Types are handled from the rarest up, so rare ones (cards, IPs) still get test templates;
    templates without entity slots (the negatives) are split plainly.
    """
    slots = {"FIRST": "NAME", "CARD": "CREDIT_CARD", "IP": "IP_ADDRESS"}
    kinds = [{slots.get(k, k) for k in re.findall(r"\{([A-Z]+)\}", t)} & set(TYPES) for t in templates]
    assign: dict[int, str] = {}
    by_rarity = sorted(TYPES, key=lambda t: (sum(t in k for k in kinds), t))
    for kind in [*by_rarity, None]:
        members = [i for i, k in enumerate(kinds) if (kind in k if kind else not k)]
        rng.shuffle(members)
        target = round(TEST_FRACTION * len(members))
        have = sum(assign.get(i) == "test" for i in members)
        for i in members:
            if i not in assign:
                assign[i] = "test" if have < target else "train"
                have += assign[i] == "test"
    return [assign[i] for i in range(len(templates))]


def build(seed: int = SEED) -> list[dict]:
    """All rows, positives first, deterministic for a given seed and Faker version."""
    gen = Generator(seed)
    split_rng = random.Random(seed + 1)
    rows, seen = [], set()
    for label, templates, offset in ((1, POSITIVE, 0), (0, NEGATIVE, len(POSITIVE))):
        splits = split_templates(templates, split_rng)
        made, stale = 0, 0
        while made < N_PER_LABEL:  # round-robin so every template contributes about equally
            for i, template in enumerate(templates):
                if made >= N_PER_LABEL:
                    break
                text, spans = gen.fill(template)
                if text in seen:
                    stale += 1
                    if stale > 50 * N_PER_LABEL:
                        raise RuntimeError("templates cannot produce enough distinct sentences")
                    continue
                seen.add(text)
                rows.append({"text": text, "label": label, "split": splits[i],
                             "template_id": offset + i, "spans": spans})
                made += 1
    return rows


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Generate the synthetic PII concept set (seeded, day-independent).")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output file (default: {OUT.relative_to(ROOT)})")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    rows = build(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    types = Counter((r["split"], s["type"]) for r in rows for s in r["spans"])
    labels = Counter((r["split"], r["label"]) for r in rows)
    print(f"pii: {len(rows)} rows from {len(POSITIVE)} positive and {len(NEGATIVE)} negative templates")
    print("  rows (split, label):", dict(sorted(labels.items())))
    print("  spans (split, type):", dict(sorted(types.items())))
    for split in ("train", "test"):
        missing = [t for t in TYPES if types[(split, t)] < 10]
        if missing:
            sys.exit(f"{split} has fewer than 10 spans of {missing}; add templates for them")


if __name__ == "__main__":
    main()
