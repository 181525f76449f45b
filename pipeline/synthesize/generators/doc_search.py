"""Questions over a generated field guide of invented plants: find the right document with full-text
search, then read it with lookup. Each plant's seed disperser is unique, so it identifies one document."""

import random

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task

SYLLABLES = ["ka", "lor", "mi", "ven", "tas", "rho", "quin", "del", "sar", "by", "nor", "tel", "zu", "fen", "ard", "ost"]
FORMS = ["shrub", "vine", "herb", "fern", "grass", "creeper"]
REGIONS = ["the northern marshes", "the salt flats", "the high moors", "the river delta", "the cloud forest",
           "the limestone hills", "the coastal dunes", "the volcanic slopes"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DISPERSERS = ["ants", "bats", "finches", "foxes", "hares", "lizards", "magpies", "moles", "otters", "parrots",
              "squirrels", "tortoises", "voles", "wasps", "wrens", "beetles", "deer", "jays", "mice", "thrushes"]


def build_guide(rng: random.Random) -> tuple[list[dict], dict]:
    """10-16 plants with distinct names, heights and dispersers; documents in a shuffled order."""
    count = rng.randint(10, 16)
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize() + " " + rng.choice(["wort", "bloom", "leaf", "thorn"]))
    plants = [{"name": name, "form": rng.choice(FORMS), "region": rng.choice(REGIONS), "month": rng.choice(MONTHS),
               "height": height, "disperser": disperser}
              for name, height, disperser in zip(sorted(names), rng.sample(range(10, 400), count), rng.sample(DISPERSERS, count))]
    rng.shuffle(plants)
    documents = []
    for i, p in enumerate(plants):
        p["id"] = f"plant-{i:02d}"
        documents.append({"id": p["id"], "title": p["name"], "text": (
            f"{p['name']} is a flowering {p['form']} native to {p['region']}. It blooms in {p['month']} and grows "
            f"up to {p['height']} cm tall. Its seeds are dispersed by {p['disperser']}.")})
    return documents, {p["disperser"]: p for p in plants}


HINT = "Search the field guide (search, then lookup by id) to answer."


def bloom_month(rng: random.Random) -> dict:
    documents, by_disperser = build_guide(rng)
    plant = by_disperser[rng.choice(sorted(by_disperser))]
    return task(
        f"{HINT} In which month does the plant whose seeds are dispersed by {plant['disperser']} bloom?",
        ["search", "lookup"], plant["month"],
        [
            step(f"I search for the plant dispersed by {plant['disperser']}.", "search", query=f"seeds dispersed by {plant['disperser']}"),
            step(f"The best match is {plant['id']} ({plant['name']}); I read the whole entry.", "lookup", id=plant["id"]),
        ],
        plant["month"], 2, {"documents": documents}, final_thought=f"{plant['name']} blooms in {plant['month']}.", template="bloom_month",
    )


def taller_plant(rng: random.Random) -> dict:
    documents, by_disperser = build_guide(rng)
    first, second = (by_disperser[d] for d in rng.sample(sorted(by_disperser), 2))
    taller = max(first, second, key=lambda p: p["height"])
    steps = []
    for plant in (first, second):
        steps += [
            step(f"I search for the plant dispersed by {plant['disperser']}.", "search", query=f"seeds dispersed by {plant['disperser']}"),
            step(f"That is {plant['id']} ({plant['name']}); I read its height.", "lookup", id=plant["id"]),
        ]
    return task(
        f"{HINT} Which grows taller: the plant whose seeds are dispersed by {first['disperser']}, or the one whose seeds "
        f"are dispersed by {second['disperser']}? Answer with the plant's name.",
        ["search", "lookup"], taller["name"], steps, taller["name"], 4, {"documents": documents},
        final_thought=f"{first['name']} grows to {first['height']} cm and {second['name']} to {second['height']} cm.",
        template="taller_plant",
    )


TEMPLATES = [Template(2, bloom_month), Template(4, taller_plant)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "doc_search").build(rng)


GENERATOR = Generator("doc_search", "search", ("search", "lookup"), make,
                      "Questions over a generated field guide, answered with full-text search and lookup.")
