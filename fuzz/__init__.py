"""Everything that drives the model: Programs, executor, oracles, engines, CLI."""
