"""The simulated production line: parts, defects, lamp, optics, scenarios, golden parts."""
