"""Questions over a generated SQLite table, answered with SQL; ground truth is computed in Python from the rows."""

import random
from collections import Counter, defaultdict

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task

REGIONS = ["North", "South", "East", "West", "Central"]
PRODUCTS = ["widget", "gadget", "sprocket", "gizmo", "doohickey", "flange"]
CUSTOMERS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell"]
DEPARTMENTS = ["Sales", "Engineering", "Support", "Finance", "Marketing"]
CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Perth"]
FIRST = ["Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kai", "Lia", "Moe", "Nell", "Omar", "Pia", "Quin", "Rosa", "Saul", "Tess"]
LAST = ["Abbott", "Brandt", "Castro", "Diallo", "Eklund", "Ferrara", "Gupta", "Horvat", "Ito", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura"]


def quote(value) -> str:
    return "'" + str(value).replace("'", "''") + "'" if isinstance(value, str) else str(value)


def setup_script(table: str, columns: list[tuple[str, str]], rows: list[tuple]) -> str:
    cols = ", ".join(f"{name} {kind}" for name, kind in columns)
    inserts = "\n".join(f"INSERT INTO {table} VALUES ({', '.join(quote(v) for v in row)});" for row in rows)
    return f"CREATE TABLE {table} ({cols});\n{inserts}\n"


def unique_top(counts: dict) -> str | None:
    """The key with the strictly largest value, or None on a tie (the generator then redraws)."""
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


ORDER_COLUMNS = [("id", "INTEGER PRIMARY KEY"), ("customer", "TEXT"), ("region", "TEXT"), ("product", "TEXT"),
                 ("quantity", "INTEGER"), ("unit_price", "INTEGER"), ("order_date", "TEXT")]


def orders(rng: random.Random) -> list[tuple]:
    return [
        (i + 1, rng.choice(CUSTOMERS), rng.choice(REGIONS), rng.choice(PRODUCTS), rng.randint(1, 40), rng.randint(3, 120),
         f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        for i in range(rng.randint(18, 36))
    ]


def orders_env(rows) -> dict:
    return {"sqlite_setup": setup_script("orders", ORDER_COLUMNS, rows)}


SCHEMA_HINT = "The database has a table orders(id, customer, region, product, quantity, unit_price, order_date as YYYY-MM-DD)."


def product_quantity(rng: random.Random) -> dict:
    rows = orders(rng)
    product, region = rng.choice([(r[3], r[2]) for r in rows])
    answer = sum(r[4] for r in rows if r[3] == product and r[2] == region)
    query = f"SELECT SUM(quantity) FROM orders WHERE product = '{product}' AND region = '{region}'"
    return task(
        f"{SCHEMA_HINT} How many units of {product} were ordered in the {region} region in total?",
        ["sql"], answer, [step(f"I sum the quantity of {product} orders in the {region} region.", "sql", query=query)],
        "{s0}", 1, orders_env(rows), final_thought="The total is {s0} units.", template="product_quantity",
    )


def top_region_revenue(rng: random.Random) -> dict:
    for _ in range(50):
        rows = orders(rng)
        revenue = defaultdict(int)
        for r in rows:
            revenue[r[2]] += r[4] * r[5]
        top = unique_top(revenue)
        if top:
            break
    query = "SELECT region FROM orders GROUP BY region ORDER BY SUM(quantity * unit_price) DESC LIMIT 1"
    return task(
        f"{SCHEMA_HINT} Which region has the highest total revenue (quantity times unit price)?",
        ["sql"], top, [step("I group orders by region, total quantity * unit_price, and take the largest.", "sql", query=query)],
        "{s0}", 1, orders_env(rows), final_thought="{s0} has the highest revenue.", template="top_region_revenue",
    )


def busiest_customer_average(rng: random.Random) -> dict:
    for _ in range(50):
        rows = orders(rng)
        top = unique_top(Counter(r[1] for r in rows))
        if top:
            break
    mine = [r[4] for r in rows if r[1] == top]
    average = round(sum(mine) / len(mine), 2)
    return task(
        f"{SCHEMA_HINT} Find the customer with the most orders, then report the average quantity per order for that customer, rounded to 2 decimals.",
        ["sql"], average,
        [
            step("First I find the customer with the most orders.", "sql",
                 query="SELECT customer FROM orders GROUP BY customer ORDER BY COUNT(*) DESC LIMIT 1"),
            step("{s0} has the most orders; now I average their order quantities.", "sql",
                 query="SELECT ROUND(AVG(quantity), 2) FROM orders WHERE customer = '{s0}'"),
        ],
        "{s1}", 2, orders_env(rows), final_thought="{s0} orders {s1} units on average.", template="busiest_customer_average", tolerance=0.01,
    )


def month_orders(rng: random.Random) -> dict:
    rows = orders(rng)
    month = int(rng.choice(rows)[6][5:7])
    answer = sum(1 for r in rows if int(r[6][5:7]) == month)
    query = f"SELECT COUNT(*) FROM orders WHERE strftime('%m', order_date) = '{month:02d}'"
    month_name = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"][month - 1]
    return task(
        f"{SCHEMA_HINT} How many orders were placed in {month_name} 2024?",
        ["sql"], answer, [step(f"I count orders whose date falls in month {month:02d}.", "sql", query=query)],
        "{s0}", 1, orders_env(rows), final_thought="{s0} orders were placed in " + month_name + ".", template="month_orders",
    )


EMPLOYEE_COLUMNS = [("id", "INTEGER PRIMARY KEY"), ("name", "TEXT"), ("department", "TEXT"), ("city", "TEXT"),
                    ("salary", "INTEGER"), ("hire_year", "INTEGER")]
EMPLOYEE_HINT = "The database has a table employees(id, name, department, city, salary, hire_year)."


def employees(rng: random.Random) -> list[tuple]:
    names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], rng.randint(15, 30))
    return [(i + 1, name, rng.choice(DEPARTMENTS), rng.choice(CITIES), rng.randrange(38000, 160000, 500), rng.randint(2005, 2024))
            for i, name in enumerate(names)]


def top_earner_city(rng: random.Random) -> dict:
    for _ in range(50):
        rows = employees(rng)
        department = rng.choice(rows)[2]
        staff = {r[1]: r[4] for r in rows if r[2] == department}
        top = unique_top(staff)
        if top:
            break
    city = next(r[3] for r in rows if r[1] == top)
    return task(
        f"{EMPLOYEE_HINT} In which city does the highest-paid employee of the {department} department work?",
        ["sql"], city,
        [
            step(f"I find the highest-paid employee in {department}.", "sql",
                 query=f"SELECT name FROM employees WHERE department = '{department}' ORDER BY salary DESC LIMIT 1"),
            step("The highest-paid is {s0}; now I look up their city.", "sql", query="SELECT city FROM employees WHERE name = '{s0}'"),
        ],
        "{s1}", 2, {"sqlite_setup": setup_script("employees", EMPLOYEE_COLUMNS, rows)},
        final_thought="{s0} works in {s1}.", template="top_earner_city",
    )


def hires_since(rng: random.Random) -> dict:
    rows = employees(rng)
    year, city = rng.randint(2010, 2020), rng.choice(CITIES)
    answer = sum(1 for r in rows if r[5] >= year and r[3] == city)
    return task(
        f"{EMPLOYEE_HINT} How many employees based in {city} were hired in {year} or later?",
        ["sql"], answer,
        [step(f"I count employees in {city} with hire_year >= {year}.", "sql",
              query=f"SELECT COUNT(*) FROM employees WHERE city = '{city}' AND hire_year >= {year}")],
        "{s0}", 1, {"sqlite_setup": setup_script("employees", EMPLOYEE_COLUMNS, rows)},
        final_thought="{s0} employees match.", template="hires_since",
    )


TEMPLATES = [Template(1, product_quantity), Template(1, top_region_revenue), Template(2, busiest_customer_average),
             Template(1, month_orders), Template(2, top_earner_city), Template(1, hires_since)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "sql_table").build(rng)


GENERATOR = Generator("sql_table", "sql", ("sql",), make, "Questions over a generated SQLite table, answered with SQL.")
