"""The bottom of the engine: frames and boxes, protocols, configuration, the base error, files, time."""
