"""Plain-SQL migrations of the simulated bank's own schema (`bank`), applied by paygate.store.migrate."""
