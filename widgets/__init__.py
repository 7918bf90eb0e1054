"""Qt widgets: each shows engine data and emits the user's intent as signals."""
