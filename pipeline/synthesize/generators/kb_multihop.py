"""Multi-hop questions over a small generated knowledge base of fictional people, companies and cities.

The entities are invented, so a model cannot answer from memory: it has to look them up.
"""

import random

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task

SYLLABLES = ["ka", "lor", "mi", "ven", "tas", "rho", "quin", "del", "sar", "by", "nor", "tel", "zu", "fen", "ard", "ost", "ira", "mol"]
COMPANY_SUFFIX = ["Labs", "Works", "Systems", "Foundry", "Dynamics", "Collective"]


def word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def unique(rng: random.Random, make, taken: set) -> str:
    while True:
        name = make()
        if name not in taken:
            taken.add(name)
            return name


def build_world(rng: random.Random) -> dict:
    """4 countries, 6 cities, 6 people, 5 companies, all linked; returns entities and their documents."""
    taken: set = set()
    countries = [unique(rng, lambda: word(rng, 3) + "ia", taken) for _ in range(4)]
    cities = [{"name": unique(rng, lambda: word(rng, 2), taken), "country": rng.choice(countries),
               "population": rng.randrange(20_000, 3_000_000, 1000)} for _ in range(6)]
    people = [{"name": unique(rng, lambda: f"{word(rng, 2)} {word(rng, 2)}", taken), "born_in": rng.choice(cities)["name"],
               "birth_year": rng.randint(1940, 1995)} for _ in range(6)]
    companies = []
    for _ in range(5):
        founder = rng.choice(people)
        companies.append({"name": unique(rng, lambda: f"{word(rng, 2)} {rng.choice(COMPANY_SUFFIX)}", taken),
                          "founder": founder["name"], "hq": rng.choice(cities)["name"],
                          "founded": rng.randint(founder["birth_year"] + 22, 2020)})
    for person in people:
        person["works_at"] = rng.choice(companies)["name"]
    docs = []
    for c in cities:
        docs.append((c["name"], f"{c['name']} is a city in {c['country']} with a population of {c['population']}."))
    for p in people:
        docs.append((p["name"], f"{p['name']} was born in {p['birth_year']} in the city of {p['born_in']}. "
                                f"{p['name']} works at {p['works_at']}."))
    for c in companies:
        docs.append((c["name"], f"{c['name']} is a company founded in {c['founded']} by {c['founder']}. "
                                f"It is headquartered in {c['hq']}."))
    for country in countries:
        docs.append((country, f"{country} is a country. Its cities in this collection: "
                              + ", ".join(c["name"] for c in cities if c["country"] == country) + "."))
    rng.shuffle(docs)
    documents = [{"id": f"doc-{i:02d}", "title": title, "text": text} for i, (title, text) in enumerate(docs)]
    return {"cities": {c["name"]: c for c in cities}, "people": {p["name"]: p for p in people},
            "companies": {c["name"]: c for c in companies}, "environment": {"documents": documents}}


HINT = "Use the lookup tool to read documents of the knowledge base by title."


def founder_country(rng: random.Random) -> dict:
    world = build_world(rng)
    company = rng.choice(list(world["companies"].values()))
    founder = world["people"][company["founder"]]
    city = world["cities"][founder["born_in"]]
    return task(
        f"{HINT} In which country was the founder of {company['name']} born?",
        ["lookup"], city["country"],
        [
            step(f"I need the founder of {company['name']}, so I look up the company.", "lookup", id=company["name"]),
            step(f"{company['name']} was founded by {founder['name']}. Next, where {founder['name']} was born.", "lookup", id=founder["name"]),
            step(f"{founder['name']} was born in {city['name']}. Now the country of {city['name']}.", "lookup", id=city["name"]),
        ],
        city["country"], 3, world["environment"], final_thought=f"{city['name']} is in {city['country']}.", template="founder_country",
    )


def employer_hq(rng: random.Random) -> dict:
    world = build_world(rng)
    person = rng.choice(list(world["people"].values()))
    company = world["companies"][person["works_at"]]
    return task(
        f"{HINT} In which city is the company that {person['name']} works at headquartered?",
        ["lookup"], company["hq"],
        [
            step(f"First I find where {person['name']} works.", "lookup", id=person["name"]),
            step(f"{person['name']} works at {company['name']}. Now its headquarters.", "lookup", id=company["name"]),
        ],
        company["hq"], 2, world["environment"], final_thought=f"{company['name']} is headquartered in {company['hq']}.", template="employer_hq",
    )


def founder_age_at_founding(rng: random.Random) -> dict:
    world = build_world(rng)
    company = rng.choice(list(world["companies"].values()))
    founder = world["people"][company["founder"]]
    age = company["founded"] - founder["birth_year"]
    return task(
        f"{HINT} How old was the founder of {company['name']} in the year the company was founded (year difference)?",
        ["lookup", "calculator"], age,
        [
            step(f"I look up {company['name']} to get its founder and founding year.", "lookup", id=company["name"]),
            step(f"It was founded in {company['founded']} by {founder['name']}. I need {founder['name']}'s birth year.", "lookup", id=founder["name"]),
            step(f"{founder['name']} was born in {founder['birth_year']}. The difference:", "calculator",
                 expression=f"{company['founded']} - {founder['birth_year']}"),
        ],
        "{s2}", 3, world["environment"], final_thought=f"{founder['name']} was {{s2}} years old.", template="founder_age_at_founding",
    )


def birth_city_population(rng: random.Random) -> dict:
    world = build_world(rng)
    person = rng.choice(list(world["people"].values()))
    city = world["cities"][person["born_in"]]
    return task(
        f"{HINT} What is the population of the city where {person['name']} was born?",
        ["lookup"], city["population"],
        [
            step(f"First I find where {person['name']} was born.", "lookup", id=person["name"]),
            step(f"{person['name']} was born in {city['name']}. Now its population.", "lookup", id=city["name"]),
        ],
        str(city["population"]), 2, world["environment"], final_thought=f"{city['name']} has {city['population']} inhabitants.",
        template="birth_city_population",
    )


TEMPLATES = [Template(3, founder_country), Template(2, employer_hq), Template(3, founder_age_at_founding), Template(2, birth_city_population)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "kb_multihop").build(rng)


GENERATOR = Generator("kb_multihop", "kb_multihop", ("lookup", "calculator"), make,
                      "Multi-hop lookups over a generated knowledge base of fictional entities.")
