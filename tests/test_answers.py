"""Answer matching reads answers as people write them: markdown and framing removed, hedged or multiple-choice
answers and cut-off words rejected, numbers honest about their precision."""

import pytest

from pipeline.verify.answers import answers_match

PLANT = {"answer": "Rhobydel thorn"}
MONTH = {"answer": "October"}
COUNT = {"answer": 646}


@pytest.mark.parametrize("answer,truth", [
    ("It is Rhobydel thorn.", PLANT), ("**Rhobydel thorn**", PLANT), ("Rhobydel thorn grows taller.", PLANT),
    ("**October**", MONTH), ("It blooms in October.", MONTH), ("The answer is `October`", MONTH), ("Final answer: October", MONTH),
    ("646", COUNT), ("It is 646.", COUNT), ("The answer is **646**.", COUNT), ("646 pencils", COUNT), ("Answer: 646", COUNT),
    ("$45.48", {"answer": 45.48, "tolerance": 0.005}), ("1,234", {"answer": 1234}),
    ("Each of the 4 friends gets 12 pencils.", {"answer": 12}),  # 4 is the question's own number
])
def test_answers_phrased_as_teachers_phrase_them_match(answer, truth):
    ok, detail = answers_match(answer, truth, "Mara shares 52 pencils among 4 friends. How many pencils does each get?")
    assert ok, detail


@pytest.mark.parametrize("answer", ["646 (or possibly 647)", "either 646 or 647", "646 or 647", "probably 646", "646, 647",
                                    "I think it is 646, but I am not sure", "646? 647?", "not 646"])
def test_hedged_or_multiple_candidate_answers_fail(answer):
    assert not answers_match(answer, COUNT)[0]


def test_a_hedged_text_answer_fails():
    assert not answers_match("Rhobydel thorn or Kamiven bloom", PLANT)[0]
    assert not answers_match("possibly October", MONTH)[0]


def test_a_sentence_that_names_something_else_too_fails():
    assert not answers_match("Kamiven bloom is taller than Rhobydel thorn.", PLANT)[0]


def test_a_number_followed_by_a_cut_off_word_fails():
    vocabulary = {"how", "many", "pencils", "does", "each", "friend", "get"}
    ok, detail = answers_match("646 penc", COUNT, "", vocabulary)
    assert not ok and "cut-off" in detail
    assert answers_match("646 pencils", COUNT, "", vocabulary)[0]
    assert answers_match("62.5 km/h", {"answer": 62.5}, "", {"km", "hours"})[0]  # a unit symbol is not a cut word


def test_a_number_must_be_honest_about_its_precision():
    truth = {"answer": 8.81849, "tolerance": 0.001, "unit": "pound"}
    assert not answers_match("8.81848 pound", truth)[0]  # within the tolerance, but states a wrong 5th decimal
    assert answers_match("8.8185 pounds", truth)[0] and answers_match("8.818 lb", truth)[0]
    assert not answers_match("8.82 pound", truth)[0]  # rounded past the tolerance


def test_units_are_read_as_before():
    truth = {"answer": 75.0, "unit": "km", "tolerance": 0.01}
    assert answers_match("It is 75 km.", truth)[0] and answers_match("**75 kilometers**", truth)[0]
    assert not answers_match("46.6028 miles", truth)[0]


def test_list_answers_in_a_sentence():
    truth = {"answer": [10957, "Tuesday"]}
    assert answers_match("He is 10957 days old and was born on a Tuesday.", truth)[0]
    assert not answers_match("10957 days, Tuesday or Wednesday", truth)[0]


def test_a_sentence_may_name_what_the_trajectory_saw_unless_it_sets_it_against_the_answer():
    seen = {"iraven", "works", "kamiven", "bloom", "rhobydel", "thorn"}
    assert answers_match("Iraven Works is headquartered in Delard.", {"answer": "Delard"}, "", seen)[0]
    assert not answers_match("Iraven Works is headquartered in Delard.", {"answer": "Delard"})[0]  # names nothing seen
    assert not answers_match("Kamiven bloom is taller than Rhobydel thorn.", PLANT, "", seen)[0]
