"""vmballoon-spec: shared vocabulary (protocol, scenarios, environment, variants) and the CLI."""
