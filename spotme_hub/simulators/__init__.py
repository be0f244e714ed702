"""Protocol-faithful device simulators for rehearsals, tests, benchmarks and the demo."""
