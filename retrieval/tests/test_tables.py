from retrieval.tables import cells, is_row, is_rule, markdown_table


def test_cells_keep_escaped_pipes():
    assert cells("| Berlin \\| Mitte | 160 EUR |") == ["Berlin | Mitte", "160 EUR"]
    assert cells("  | a | ends in a pipe \\|") == ["a", "ends in a pipe |"]


def test_rule_lines():
    assert is_rule("|---|:---:|---:|") and is_rule(" | --- | :--- |")
    assert not is_rule("| a | --- |") and not is_rule("---") and not is_row("a | b")


def test_markdown_table_round_trips_through_cells():
    text = markdown_table([["city", "cap"], ["Berlin | Mitte", "160\n EUR"], ["", ""], ["Paris"]])
    assert text == "| city | cap |\n|---|---|\n| Berlin \\| Mitte | 160 EUR |\n| Paris |  |"
    header, rule, *rows = text.split("\n")
    assert cells(header) == ["city", "cap"] and is_rule(rule)
    assert [cells(r) for r in rows] == [["Berlin | Mitte", "160 EUR"], ["Paris", ""]]
    assert markdown_table([["only", "one row"]]) == "only | one row"
