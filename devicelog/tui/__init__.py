"""The clinic terminal UI (textual).  Nothing outside ``devicelog.tui`` imports textual."""
