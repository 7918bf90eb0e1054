"""The running station: the pipeline's stages, the station model shared by the window and the headless run, thread policy."""
