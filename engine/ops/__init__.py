"""Running on the line PC: the readiness doctor and the service manager's notifications."""
