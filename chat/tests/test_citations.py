"""The figure and quotation check behind each citation, on hand-made answers and passages."""

from chat.citations import held_numbers, passages_by_number, stated_numbers, stated_quotes, unsupported

PASSAGES = {
    1: "Employees get twenty-five days of paid annual leave per year.",
    2: "Meals abroad are refunded up to 40 euros a day; hotels up to 1,200 EUR a week.",
}


def test_a_figure_the_passage_holds_passes_in_digits_or_words():
    assert unsupported("Employees get 25 days of leave [1].", PASSAGES) == []
    assert unsupported("Hotels are refunded up to 1200 EUR a week [2].", PASSAGES) == []


def test_a_figure_the_passage_lacks_flags_that_marker_only():
    text = "Meals: up to 40 euros [2]. Employees get 30 days of leave [1]."
    assert unsupported(text, PASSAGES) == [{"marker": 1, "n": 1, "missing": ["30"]}]


def test_markers_side_by_side_share_their_claim_and_any_passage_may_hold_it():
    assert unsupported("25 days of leave and meals up to 40 euros [1][2].", PASSAGES) == []
    flagged = unsupported("Leave is 25 days and meals 45 euros [1][2].", PASSAGES)
    assert flagged == [{"marker": 0, "n": 1, "missing": ["45"]}, {"marker": 1, "n": 2, "missing": ["45"]}]


def test_a_claim_is_its_own_line_and_list_numbers_are_not_figures():
    text = "The limits:\n1. Leave: 25 days [1]\n2. Meals: 45 euros a day [2]\n3. Hotels: 1,200 EUR [2]"
    assert unsupported(text, PASSAGES) == [{"marker": 1, "n": 2, "missing": ["45"]}]


def test_figures_from_the_question_are_the_users_and_not_checked():
    text = "In 2026 employees get 25 days [1]."
    assert unsupported(text, PASSAGES, question="How much leave do we get in 2026?") == []
    assert unsupported(text, PASSAGES) == [{"marker": 0, "n": 1, "missing": ["2026"]}]


def test_figures_in_chinese_text_are_checked():
    passages = {1: "差旅费用在出差结束后30天内报销。"}
    assert unsupported("差旅费用在30天内报销[1]。", passages) == []
    assert unsupported("差旅费用在60天内报销[1]。", passages) == [{"marker": 0, "n": 1, "missing": ["60"]}]


def test_numbers_are_compared_by_value_and_code_names_are_not_numbers():
    assert stated_numbers("v2 of the H2O app, 10:30 on 2026-03-05, $1,200.50 and 12.50%") == [
        "10",
        "30",
        "2026",
        "3",
        "5",
        "1200.5",
        "12.5",
    ]
    assert {"25", "25000", "99", "100", "12"} <= held_numbers(
        "twenty five thousand, ninety-nine, one hundred, Twelve"
    )


def test_the_title_and_headings_count_as_the_passage():
    sources = [{"n": 1, "title": "Policy 2026", "heading_path": "Leave", "text": "Staff get 25 days."}]
    assert unsupported("The 2026 policy gives 25 days [1].", passages_by_number(sources)) == []


def test_a_quotation_must_be_the_passages_own_words():
    """Quoted words claim to be the source's: found (case, spacing, quote marks and an ellipsis
    aside) they pass; reworded, they are flagged like a figure."""
    held = 'The policy says "twenty-five days of paid annual leave" [1].'
    assert unsupported(held, PASSAGES) == []
    assert (
        unsupported("It grants \u201cEmployees get  twenty-five days \u2026 per year\u201d [1].", PASSAGES)
        == []
    )
    reworded = 'The policy says "twenty-five days of paid holiday" [1].'
    assert unsupported(reworded, PASSAGES) == [
        {"marker": 0, "n": 1, "missing": ["\u201ctwenty-five days of paid holiday\u201d"]}
    ]
    # Out of order across an ellipsis is not the passage's wording either.
    assert unsupported('"per year ... paid annual leave" [1]', PASSAGES)[0]["missing"]


def test_short_quotes_and_the_users_own_words_are_not_checked():
    assert stated_quotes('a "scare" quote, "two words" and "three whole words"') == ["three whole words"]
    text = 'You asked about "leave for part-time staff"; part-time staff get 25 days [1].'
    assert unsupported(text, PASSAGES, question='What is the "leave for part-time staff"?') == []
