"""Pure domain code: states, specs, the status function, validation. No I/O."""
