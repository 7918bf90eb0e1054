"""The window: start-up, the shell, the one task runner, and the feature controllers."""
