"""Unit conversions and calendar computations (calculator, convert, date)."""

import datetime as dt
import random

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task
from pipeline.tools.convert import convert_value, format_quantity

NAMES = ["Mara", "Tomas", "Aiko", "Ravi", "Lena", "Oscar", "Nia", "Jonas", "Priya", "Mateo"]


def run_distance(rng: random.Random) -> dict:
    name, per_day, days = rng.choice(NAMES), rng.randint(3, 25) + rng.choice([0, 0.5]), rng.randint(3, 14)
    km = per_day * days
    miles = float(format_quantity(convert_value(km, "km", "mile")))
    return task(
        f"{name} runs {per_day} km every day for {days} days. How many miles is that in total? Give the answer in miles.",
        ["calculator", "convert"], miles,
        [
            step("The total distance in km is the daily distance times the number of days.", "calculator", expression=f"{per_day} * {days}"),
            step("{s0} km in miles:", "convert", value="{s0}", from_unit="km", to_unit="mile"),
        ],
        "{s1}", 2, final_thought="That is {s1}.", tolerance=0.001, unit="mile", template="run_distance",
    )


def flour(rng: random.Random) -> dict:
    grams, batches = rng.choice([250, 300, 400, 450, 500, 600, 750]), rng.randint(2, 8)
    pounds = float(format_quantity(convert_value(grams * batches, "gram", "pound")))
    return task(
        f"A bread recipe needs {grams} g of flour per batch. How many pounds of flour are needed for {batches} batches?",
        ["calculator", "convert"], pounds,
        [
            step("Total grams of flour:", "calculator", expression=f"{grams} * {batches}"),
            step("{s0} g in pounds:", "convert", value="{s0}", from_unit="gram", to_unit="pound"),
        ],
        "{s1}", 2, final_thought="{s1} of flour are needed.", tolerance=0.001, unit="pound", template="flour",
    )


def fever(rng: random.Random) -> dict:
    fahrenheit = rng.randint(950, 1050) / 10
    celsius = float(format_quantity(convert_value(fahrenheit, "degF", "degC")))
    return task(
        f"A thermometer reads {fahrenheit} °F. What is that temperature in degrees Celsius?",
        ["convert"], celsius,
        [step(f"I convert {fahrenheit} degF to degC.", "convert", value=fahrenheit, from_unit="degF", to_unit="degC")],
        "{s0}", 1, final_thought="It is {s0}.", tolerance=0.001, unit="degC", template="fever",
    )


def random_date(rng: random.Random) -> dt.date:
    return dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2500))


def project_end_weekday(rng: random.Random) -> dict:
    start, days = random_date(rng), rng.randint(10, 400)
    end = start + dt.timedelta(days=days)
    return task(
        f"A project starts on {start.isoformat()} and ends {days} days later. On which day of the week does it end?",
        ["date"], end.strftime("%A"),
        [
            step(f"First I add {days} days to {start.isoformat()}.", "date", operation="add_days", date=start.isoformat(), days=days),
            step("The project ends on {s0}; now its weekday.", "date", operation="weekday", date="{s0}"),
        ],
        "{s1}", 2, final_thought="It ends on a {s1}.", template="project_end_weekday",
    )


def weeks_between(rng: random.Random) -> dict:
    start = random_date(rng)
    weeks = rng.randint(2, 80)
    end = start + dt.timedelta(days=7 * weeks)
    return task(
        f"How many whole weeks are there from {start.isoformat()} to {end.isoformat()}?",
        ["date", "calculator"], weeks,
        [
            step("First the number of days between the two dates.", "date", operation="days_between", date=start.isoformat(), end_date=end.isoformat()),
            step("{s0} days divided by 7 gives the weeks.", "calculator", expression="{s0} // 7"),
        ],
        "{s1}", 2, final_thought="There are {s1} weeks.", template="weeks_between",
    )


def drive_km(rng: random.Random) -> dict:
    mph, hours = rng.randint(25, 75), rng.randint(2, 9)
    km = float(format_quantity(convert_value(mph * hours, "mile", "km")))
    return task(
        f"A truck drives at {mph} miles per hour for {hours} hours. How many kilometres does it cover?",
        ["calculator", "convert"], km,
        [
            step("Distance in miles is speed times time.", "calculator", expression=f"{mph} * {hours}"),
            step("{s0} miles in km:", "convert", value="{s0}", from_unit="mile", to_unit="km"),
        ],
        "{s1}", 2, final_thought="It covers {s1}.", tolerance=0.001, unit="km", template="drive_km",
    )


def age_in_days(rng: random.Random) -> dict:
    name, birth = rng.choice(NAMES), random_date(rng) - dt.timedelta(days=365 * 30)
    later = birth + dt.timedelta(days=rng.randint(3000, 15000))
    span = (later - birth).days
    return task(
        f"{name} was born on {birth.isoformat()}. How many days old is {name} on {later.isoformat()}, and on which weekday was {name} born? "
        "Answer as '<days>, <weekday>'.",
        ["date"], [span, birth.strftime("%A")],
        [
            step("Days between the birth date and the later date:", "date", operation="days_between", date=birth.isoformat(), end_date=later.isoformat()),
            step("Now the weekday of the birth date.", "date", operation="weekday", date=birth.isoformat()),
        ],
        "{s0}, {s1}", 2, final_thought="{name} is {s0} days old and was born on a {s1}.".replace("{name}", name), template="age_in_days",
    )


TEMPLATES = [Template(2, run_distance), Template(2, flour), Template(1, fever), Template(2, project_end_weekday),
             Template(2, weeks_between), Template(2, drive_km), Template(2, age_in_days)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "units_dates").build(rng)


GENERATOR = Generator("units_dates", "units_dates", ("calculator", "convert", "date"), make,
                      "Unit conversions and date arithmetic (calculator, convert, date).")
