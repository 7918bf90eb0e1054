"""The shell: entry points, main window, wiring and threads."""
