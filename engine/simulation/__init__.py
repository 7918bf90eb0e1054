"""The simulated production line, one module per part of it.

- :mod:`.line`: the conveyor and the frame: :class:`~engine.simulation.line.LineSimulator` renders a slot.
- :mod:`.scenarios`: how lamp, optics, camera and product mix change over line time.
- :mod:`.parts` and :mod:`.defects`: the plates on the belt and the scratches, dents and contamination on them.
- :mod:`.golden`: the golden parts, the same on every station.
- :mod:`.optics`: the lens and the camera it makes; :mod:`.lamp`: the light on the parts and the sensor's noise.
- :mod:`.targets`: the checkerboard shown to the camera during recalibration.
"""
