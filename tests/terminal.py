"""What a terminal, or Jupyter's output area, shows of text written with carriage returns and backspaces."""

from __future__ import annotations


def screen(text: str) -> list[str]:
    """The rows ``text`` leaves on screen: '\\r' moves back to the row's start and the next characters overwrite
    the row's old ones one by one (what is not overwritten stays, as on a terminal and in Jupyter); '\\b' moves
    back one character; '\\n' starts a new row. Trailing spaces are dropped; no empty row after a last '\\n'."""
    rows: list[list[str]] = [[]]
    column = 0
    for char in text:
        if char == "\n":
            rows.append([])
            column = 0
        elif char == "\r":
            column = 0
        elif char == "\b":
            column = max(column - 1, 0)
        else:
            row = rows[-1]
            if column < len(row):
                row[column] = char
            else:
                row.extend(" " * (column - len(row)))
                row.append(char)
            column += 1
    if not rows[-1]:
        rows.pop()
    return ["".join(row).rstrip() for row in rows]
