"""Multi-step arithmetic word problems solved with the calculator."""

import random
from fractions import Fraction

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task

NAMES = ["Mara", "Tomas", "Aiko", "Ravi", "Lena", "Oscar", "Nia", "Jonas", "Priya", "Mateo", "Ines", "Kofi", "Yuki", "Sven", "Amara", "Dario"]
ITEMS = [("pencils", "box"), ("stickers", "sheet"), ("marbles", "bag"), ("cookies", "tin"), ("cards", "pack"), ("beads", "jar")]
GOODS = [("notebook", "pen"), ("apple", "pear"), ("ticket", "program"), ("coffee", "muffin"), ("shirt", "sock pair")]


def number(value: Fraction):
    """Exact results as JSON numbers: integers stay integers."""
    return int(value) if value.denominator == 1 else float(value)


def share(rng: random.Random) -> dict:
    name, (item, unit) = rng.choice(NAMES), rng.choice(ITEMS)
    friends = rng.randint(2, 9)
    per_pack, packs = rng.randint(6, 30), rng.randint(2, 8)
    total = per_pack * packs
    keep = rng.randint(1, total // 3)
    keep += (total - keep) % friends  # make the remainder split evenly
    each = (total - keep) // friends
    return task(
        f"{name} buys {packs} {unit}s of {item} with {per_pack} {item} in each {unit}, keeps {keep} for themself "
        f"and shares the rest equally among {friends} friends. How many {item} does each friend get?",
        ["calculator"], each,
        [
            step(f"First I find how many {item} {name} has in total: {packs} {unit}s of {per_pack}.", "calculator", expression=f"{packs} * {per_pack}"),
            step(f"{name} has {{s0}} {item}. Keeping {keep} leaves the number to share.", "calculator", expression=f"{{s0}} - {keep}"),
            step(f"{{s1}} {item} are shared equally among {friends} friends.", "calculator", expression=f"{{s1}} / {friends}"),
        ],
        "{s2}", 3, final_thought="Each friend gets {s2}.", template="share",
    )


def change(rng: random.Random) -> dict:
    name, (a, b) = rng.choice(NAMES), rng.choice(GOODS)
    na, nb = rng.randint(2, 9), rng.randint(2, 9)
    pa, pb = Fraction(rng.randint(50, 900), 100), Fraction(rng.randint(50, 900), 100)
    cost = na * pa + nb * pb
    bill = next(b for b in (20, 50, 100, 200) if b >= cost)
    return task(
        f"{name} buys {na} {a}s at ${float(pa):.2f} each and {nb} {b}s at ${float(pb):.2f} each, "
        f"and pays with a ${bill} bill. How much change, in dollars, does {name} get?",
        ["calculator"], number(bill - cost),
        [
            step(f"The {a}s cost {na} times ${float(pa):.2f}.", "calculator", expression=f"{na} * {float(pa):.2f}"),
            step(f"The {b}s cost {nb} times ${float(pb):.2f}.", "calculator", expression=f"{nb} * {float(pb):.2f}"),
            step("The total is the sum of both.", "calculator", expression="{s0} + {s1}"),
            step(f"The change is ${bill} minus the total of ${{s2}}.", "calculator", expression=f"{bill} - {{s2}}"),
        ],
        "{s3}", 4, final_thought="The change is ${s3}.", template="change", tolerance=0.005,
    )


def discount(rng: random.Random) -> dict:
    price = Fraction(rng.randint(20, 500))
    off, tax = rng.choice([10, 15, 20, 25, 30, 40]), rng.choice([5, 7, 8, 10, 12])
    final = round(price * (1 - Fraction(off, 100)) * (1 + Fraction(tax, 100)), 2)
    return task(
        f"A jacket costs ${price}. It is discounted by {off}%, and then {tax}% sales tax is added to the discounted price. "
        "What is the final price in dollars, rounded to cents?",
        ["calculator"], number(final),
        [
            step(f"The discounted price is {100 - off}% of ${price}.", "calculator", expression=f"{price} * (100 - {off}) / 100"),
            step(f"Adding {tax}% tax to ${{s0}}.", "calculator", expression=f"{{s0}} * (100 + {tax}) / 100"),
            step("Rounding to cents.", "calculator", expression="round({s1}, 2)"),
        ],
        "{s2}", 3, final_thought="The final price is ${s2}.", template="discount", tolerance=0.005,
    )


def trip(rng: random.Random) -> dict:
    name = rng.choice(NAMES)
    v1, t1, v2, t2 = rng.randint(40, 110), rng.randint(1, 5), rng.randint(30, 90), rng.randint(1, 4)
    avg = Fraction(v1 * t1 + v2 * t2, t1 + t2)
    return task(
        f"{name} drives {t1} hours at {v1} km/h and then {t2} hours at {v2} km/h. "
        "What is the average speed over the whole trip in km/h?",
        ["calculator"], number(avg),
        [
            step("The total distance is the sum of both legs.", "calculator", expression=f"{v1} * {t1} + {v2} * {t2}"),
            step(f"{name} covered {{s0}} km in {t1 + t2} hours; the average speed is distance over time.", "calculator", expression=f"{{s0}} / ({t1} + {t2})"),
        ],
        "{s1}", 2, final_thought="The average speed is {s1} km/h.", template="trip", tolerance=1e-6,
    )


def garden(rng: random.Random) -> dict:
    length, width, pond = rng.randint(8, 40), rng.randint(5, 30), rng.randint(2, 5)
    cost = rng.randint(2, 15)
    total = (length * width - pond * pond) * cost
    return task(
        f"A rectangular garden is {length} m long and {width} m wide. A square pond with {pond} m sides sits inside it. "
        f"Turf costs ${cost} per square metre. How much does it cost to turf the garden around the pond?",
        ["calculator"], total,
        [
            step("The garden's area is length times width.", "calculator", expression=f"{length} * {width}"),
            step("The pond's area is its side squared.", "calculator", expression=f"{pond} ** 2"),
            step("The area to turf is the garden minus the pond.", "calculator", expression="{s0} - {s1}"),
            step(f"At ${cost} per square metre:", "calculator", expression=f"{{s2}} * {cost}"),
        ],
        "{s3}", 4, final_thought="Turfing costs ${s3}.", template="garden",
    )


def savings(rng: random.Random) -> dict:
    name = rng.choice(NAMES)
    weekly, weeks, spend = rng.randint(5, 60), rng.randint(4, 30), 0
    spend = rng.randint(1, weekly * weeks // 2)
    return task(
        f"{name} saves ${weekly} every week for {weeks} weeks and then spends ${spend} on a gift. How many dollars are left?",
        ["calculator"], weekly * weeks - spend,
        [
            step(f"Savings after {weeks} weeks:", "calculator", expression=f"{weekly} * {weeks}"),
            step(f"After spending ${spend}:", "calculator", expression=f"{{s0}} - {spend}"),
        ],
        "{s1}", 2, final_thought="{s1} dollars are left.", template="savings",
    )


TEMPLATES = [Template(3, share), Template(4, change), Template(3, discount), Template(2, trip), Template(4, garden), Template(2, savings)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "arithmetic").build(rng)


GENERATOR = Generator("arithmetic", "arithmetic", ("calculator",), make, "Multi-step arithmetic word problems (calculator).")
