"""Applications over the readings: CLI, replay, fuzzing, simulation, traces, spec generation."""
