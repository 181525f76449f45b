"""Questions answered by writing and running Python (the sandboxed python tool).

The two-step templates define something in the first cell and use it in the second, which only works
because the interpreter persists through the episode.
"""

import random
from collections import Counter

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task

COUNT_PRIMES = """def count_primes(n):
    sieve = bytearray([1]) * n
    sieve[:2] = b"\\x00\\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(range(i * i, n, i)))
    return sum(sieve)"""

WORDS = ["river", "stone", "lantern", "meadow", "copper", "willow", "harbor", "ember", "falcon", "thistle", "orchard",
         "glacier", "saffron", "canyon", "pebble", "quartz", "beacon", "juniper", "marble", "tundra"]


def primes_below(n: int) -> int:
    """Trial division: deliberately not the sieve the solution uses."""
    return sum(1 for k in range(2, n) if all(k % d for d in range(2, int(k ** 0.5) + 1)))


def collatz(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def prime_count(rng: random.Random) -> dict:
    n = rng.randint(500, 8000)
    return task(
        f"How many prime numbers are there below {n}? Use Python.",
        ["python"], primes_below(n),
        [step("I write a sieve of Eratosthenes and count the primes.", "python", code=f"{COUNT_PRIMES}\n\nprint(count_primes({n}))")],
        "{s0}", 1, final_thought="There are {s0} primes below " + str(n) + ".", template="prime_count",
    )


def digit_sum(rng: random.Random) -> dict:
    base, exponent = rng.randint(2, 99), rng.randint(20, 300)
    return task(
        f"What is the sum of the decimal digits of {base}^{exponent}? Use Python.",
        ["python"], sum(int(d) for d in str(base ** exponent)),
        [step(f"Python integers are exact, so I compute {base}**{exponent} and add its digits.", "python",
              code=f"print(sum(int(d) for d in str({base} ** {exponent})))")],
        "{s0}", 1, final_thought="The digit sum is {s0}.", template="digit_sum",
    )


def collatz_steps(rng: random.Random) -> dict:
    n = rng.randint(10, 100_000)
    code = f"n, steps = {n}, 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nprint(steps)"
    return task(
        f"Starting from {n}, how many steps does the Collatz process (halve even numbers, map odd n to 3n+1) take to reach 1?",
        ["python"], collatz(n), [step("I simulate the process and count the steps.", "python", code=code)],
        "{s0}", 1, final_thought="It takes {s0} steps.", template="collatz_steps",
    )


def primes_between(rng: random.Random) -> dict:
    low = rng.randint(100, 3000)
    high = low + rng.randint(200, 4000)
    return task(
        f"How many prime numbers p satisfy {low} <= p < {high}? Use Python.",
        ["python"], primes_below(high) - primes_below(low),
        [
            step(f"I define a prime-counting function and first count the primes below {high}.", "python",
                 code=f"{COUNT_PRIMES}\n\nprint(count_primes({high}))"),
            step(f"There are {{s0}} primes below {high}; subtracting those below {low} leaves the ones in the range.", "python",
                 code=f"print(count_primes({high}) - count_primes({low}))"),
        ],
        "{s1}", 2, final_thought="{s1} primes lie in the range.", template="primes_between",
    )


def word_stats(rng: random.Random) -> dict:
    while True:
        words = [rng.choice(WORDS) for _ in range(rng.randint(25, 60))]
        ranked = Counter(words).most_common(2)
        if ranked[0][1] > ranked[1][1]:
            break
    text = " ".join(words)
    return task(
        f"Here is a text:\n{text}\nHow many words does it have, and which word occurs most often? Answer as '<count>, <word>'.",
        ["python"], [len(words), ranked[0][0]],
        [
            step("I store the words in a variable and count them.", "python", code=f"words = {text!r}.split()\nprint(len(words))"),
            step("The text has {s0} words. Now the most common one, from the same variable.", "python",
                 code="from collections import Counter\nprint(Counter(words).most_common(1)[0][0])"),
        ],
        "{s0}, {s1}", 2, final_thought="{s0} words; the most frequent is {s1}.", template="word_stats",
    )


TEMPLATES = [Template(1, prime_count), Template(1, digit_sum), Template(1, collatz_steps), Template(2, primes_between),
             Template(2, word_stats)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "python_compute").build(rng)


GENERATOR = Generator("python_compute", "code", ("python",), make, "Computations answered by running Python in the sandbox.")
