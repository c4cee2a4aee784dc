"""Built-in export formats: REFI-QDA, reports, tables."""
