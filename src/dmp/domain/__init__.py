"""Pure domain model: no framework, database or network imports."""
